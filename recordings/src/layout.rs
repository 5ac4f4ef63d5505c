//! Where a recording lives under the data directory: by company, then by date, so retention and
//! company deletion remove whole directories and no directory grows without bound.

use std::path::PathBuf;

/// A calendar date (UTC), passed in by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date {
    /// Year.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day, 1–31.
    pub day: u8,
}

/// The directory of all of a company's recordings, relative to the data directory.
pub fn company_dir(company_id: i64) -> PathBuf {
    PathBuf::from("recordings").join(company_id.to_string())
}

/// The path of one call's recording, relative to the data directory:
/// `recordings/<company>/<yyyy>/<mm>/<dd>/call-<call>.wav`.
pub fn recording_path(company_id: i64, date: Date, call_id: i64) -> PathBuf {
    company_dir(company_id)
        .join(format!("{:04}", date.year))
        .join(format!("{:02}", date.month))
        .join(format!("{:02}", date.day))
        .join(format!("call-{call_id}.wav"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_by_company_then_date() {
        let p = recording_path(
            7,
            Date {
                year: 2026,
                month: 3,
                day: 9,
            },
            42,
        );
        assert_eq!(p, PathBuf::from("recordings/7/2026/03/09/call-42.wav"));
        assert!(p.starts_with(company_dir(7)));
    }
}
