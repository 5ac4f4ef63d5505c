//! Call admin commands: `create-call-group` (checked, one-line refusals) and `list-calls`.

use crate::{ok, refused};

fn group<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "admin",
        "create-call-group",
        "--company",
        "tel",
        "--name",
        name,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn call_groups_and_the_call_log_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        &["admin", "create-company", "--name", "Tel", "--slug", "tel"],
        d,
    );
    for email in ["ann@tel.example.com", "bo@tel.example.com"] {
        ok(
            &[
                "admin",
                "create-user",
                "--company",
                "tel",
                "--email",
                email,
                "--password",
                "long-password",
                "--role",
                "agent",
            ],
            d,
        );
    }
    ok(
        &[
            "admin",
            "create-trunk",
            "--company",
            "tel",
            "--name",
            "Provider",
            "--host",
            "sip.example.com",
            "--did",
            "+15559870000",
            "--did",
            "+15559870001",
        ],
        d,
    );

    let support: i64 = ok(&group("Support", &["--did", "+15559870001"]), d)
        .trim()
        .parse()
        .expect("the id alone on stdout");
    let sales: i64 = ok(
        &group(
            "Sales",
            &[
                "--did",
                "+1 555 987 0000",
                "--member",
                "ann@tel.example.com",
                "--member",
                "Bo@Tel.example.com",
                "--ring-timeout",
                "20",
                "--no-answer-status",
                "486",
                "--overflow",
                "Support",
            ],
        ),
        d,
    )
    .trim()
    .parse()
    .expect("the id alone on stdout");
    assert_ne!(support, sales);

    for (extra, why) in [
        (&["--did", "030 123"][..], "--did"),
        (&["--did", "+15550000000"][..], "--did"),
        (&["--did", "+15559870000"][..], "rings another group"),
        (&["--member", "nobody@tel.example.com"][..], "no user"),
        (&["--ring-timeout", "4"][..], "--ring-timeout"),
        (&["--no-answer-status", "200"][..], "--no-answer-status"),
        (&["--overflow", "Nope"][..], "--overflow"),
    ] {
        refused(&group("X", extra), d, why);
    }
    refused(&group("Sales", &[]), d, "exists");
    refused(&group(" ", &[]), d, "--name");
    let mut other = group("X", &[]);
    other[3] = "nope";
    refused(&other, d, "no company");

    let out = ok(&["admin", "list-calls", "--company", "tel"], d);
    assert!(out.contains("(no calls)"), "{out}");

    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let db =
            masterz::store::Db::connect(&format!("sqlite://{}", d.join("masterz.db").display()), 2)
                .await
                .unwrap();
        let mut c = db.conn().await.unwrap();
        let x = &mut c.ex();
        let company = masterz::store::companies::by_slug(x, "tel")
            .await
            .unwrap()
            .unwrap();
        let g = masterz::store::routing::group(x, company.id, sales)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (g.ring_timeout_secs, g.no_answer_status, g.overflow_group_id),
            (20, 486, Some(support))
        );
        assert_eq!(g.members.len(), 2);
        assert_eq!(g.dids, ["+15559870000"]);
        let ann = masterz::store::users::user_by_email(x, company.id, "ann@tel.example.com")
            .await
            .unwrap()
            .unwrap();
        let customer =
            masterz::store::customers::find_or_create_by_phone(x, company.id, "+15551230001")
                .await
                .unwrap();
        for (i, sip_call_id) in ["first@p", "second@p"].into_iter().enumerate() {
            let new = masterz::store::calls::NewCall {
                customer_id: Some(customer),
                direction: "in",
                from_uri: "sip:+15551230001@provider.example",
                to_uri: "sip:+15559870000@masterz",
                trunk_id: None,
                group_id: Some(sales),
                sip_call_id,
                agent_user_id: None,
                started_at: 1_764_075_600_000 + i as i64 * 60_000,
            };
            masterz::store::calls::create(x, company.id, &new)
                .await
                .unwrap();
        }
        let first = masterz::store::calls::list(x, company.id, &Default::default())
            .await
            .unwrap()
            .last()
            .unwrap()
            .id;
        masterz::store::calls::answered(
            x,
            company.id,
            first,
            Some(ann.id),
            1_764_075_605_000,
            "PCMU",
        )
        .await
        .unwrap();
        let end = masterz::store::calls::CallEnd {
            ended_at: 1_764_075_670_000,
            status: "completed",
            end_reason: "bye",
            hangup_by: Some("caller"),
            sip_status: None,
            media: None,
        };
        masterz::store::calls::ended(x, company.id, first, &end)
            .await
            .unwrap();
    });

    let out = ok(&["admin", "list-calls", "--company", "tel"], d);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("STATUS") && lines[0].contains("AGENT"),
        "{out}"
    );
    assert!(lines[1].contains("ringing"), "newest first: {out}");
    assert!(
        lines[2].contains("completed")
            && lines[2].contains("1:05")
            && lines[2].contains("ann@tel.example.com")
            && lines[2].contains("2025-11-25T13:00:00.000Z"),
        "{out}"
    );
    let out = ok(
        &["admin", "list-calls", "--company", "tel", "--limit", "1"],
        d,
    );
    assert_eq!(out.lines().count(), 2, "{out}");
    refused(
        &["admin", "list-calls", "--company", "tel", "--limit", "0"],
        d,
        "--limit",
    );
    refused(
        &["admin", "list-calls", "--company", "nope"],
        d,
        "no company",
    );
}
