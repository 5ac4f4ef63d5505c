//! Phone numbers in E.164, so that a caller and a WhatsApp contact with the same number meet.
//!
//! The sources we see write numbers as `+49 151 2345-6789`, `0049151…`, `tel:+49…`, SIP user parts
//! (`+4915123456789`) or WhatsApp ids (`4915123456789`, digits with the country code and no `+`).
//! A number without a country code (`0151…`) cannot be placed without knowing the country; it is
//! not guessed — [`normalize_e164`] returns `None` and the caller keeps it as a plain identity.

/// Normalises `text` to E.164 (`+` and 8–15 digits), or `None` if it is not an international number.
pub fn normalize_e164(text: &str) -> Option<String> {
    let mut s = text.trim();
    for prefix in ["tel:", "TEL:"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    // Drop URI parameters (`;phone-context=…`) and visual separators.
    let s = s.split(';').next().unwrap_or("");
    let mut digits = String::with_capacity(16);
    let mut plus = false;
    for (i, ch) in s.chars().enumerate() {
        match ch {
            '+' if i == 0 => plus = true,
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else if digits.starts_with('0') {
        // A national number (trunk prefix 0): the country is unknown.
        return None;
    } else {
        // Digits only, as WhatsApp writes wa_id: the country code is included.
        digits
    };
    let ok = (8..=15).contains(&international.len()) && !international.starts_with('0');
    ok.then(|| format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::normalize_e164;

    #[test]
    fn the_forms_we_meet() {
        for (input, want) in [
            ("+49 151 2345-6789", Some("+4915123456789")),
            ("0049 (151) 23456789", Some("+4915123456789")),
            ("4915123456789", Some("+4915123456789")),
            (
                "tel:+1-650-555-1234;phone-context=example.com",
                Some("+16505551234"),
            ),
            ("+1 (650) 555.1234", Some("+16505551234")),
            ("015123456789", None),
            ("+12", None),
            ("+1234567890123456", None),
            ("alice", None),
            ("+49+151", None),
            ("", None),
        ] {
            assert_eq!(normalize_e164(input).as_deref(), want, "{input}");
        }
    }
}
