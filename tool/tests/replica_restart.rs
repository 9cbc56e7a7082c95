//! Restartable and watched replicas (Atoll extensions): `<replica restart="true">` and
//! `<replica hung_after_ms="…">` are parsed into the model, checked (a bad boolean or
//! number, a time of 0, above a minute or under three ticks, the only replica, a word a
//! restart could not clear), and carried by the plan and its reports; every PD's plan
//! patches its channels by the replica of their other end into the optional
//! `atoll_peer_channels`. (The boot specs' fields: `tool/src/plan/boot.rs`; the optional
//! patch: `tool/src/pack/program.rs`.)
#![forbid(unsafe_code)]

use atoll_tool::diagnostics::Code;
use atoll_tool::plan::{PEER_CHANNELS_SYMBOL, PatchValue, Plan};
use atoll_tool::report;

mod check;
use check::{BOARD, at, codes, errors, plan};

/// Two replicas, `main` on core 0 and `worker` on core 1 (with `worker` attributes added),
/// a PD on each and a notification channel between them (`a`'s id 3, `b`'s id 5).
fn two_replicas(worker: &str) -> String {
    format!(
        r#"<system>
  <replica name="main" cores="0" />
  <replica name="worker" cores="1" {worker} />
  <protection_domain name="a" replica="main">
    <program_image path="a.elf" />
  </protection_domain>
  <protection_domain name="b" replica="worker">
    <program_image path="b.elf" />
  </protection_domain>
  <channel>
    <end pd="a" id="3" />
    <end pd="b" id="5" />
  </channel>
</system>"#
    )
}

#[test]
fn restart_and_hung_after_ms_are_parsed_into_the_model_and_default_to_off() {
    let text = two_replicas(r#"restart="true" hung_after_ms="0x1f4""#);
    let checked = atoll_tool::check(&text, BOARD, false);
    assert!(checked.diagnostics.is_empty(), "{:#?}", checked.diagnostics);
    let system = checked.system.expect("model");
    let worker = &system.replicas["worker"];
    assert!(worker.restarts());
    let restart = worker.restart.expect("the span of restart=\"true\"");
    assert_eq!(&text[restart.start..restart.end], "true");
    assert_eq!(worker.hung_after_ms, Some(500));
    let main = &system.replicas["main"];
    assert_eq!((main.restart, main.hung_after_ms), (None, None));

    let text = two_replicas(r#"restart="false" hung_after_ms="60000""#);
    let system = atoll_tool::check(&text, BOARD, false)
        .system
        .expect("model");
    assert_eq!(system.replicas["worker"].restart, None);
    assert_eq!(system.replicas["worker"].hung_after_ms, Some(60_000));
}

#[test]
fn a_restart_that_is_no_boolean_is_refused_at_the_value() {
    let text = two_replicas(r#"restart="yes""#);
    let errors = errors(&text, false);
    assert_eq!(codes(&errors), [Code::InvalidBoolean]);
    assert_eq!(at(&text, &errors[0]), "yes");
    assert_eq!(
        errors[0].message,
        "'restart' must be 'true' or 'false', not 'yes'"
    );
}

#[test]
fn a_hung_after_ms_that_is_no_number_is_refused_at_the_value() {
    let text = two_replicas(r#"hung_after_ms="1s""#);
    let errors = errors(&text, false);
    assert_eq!(codes(&errors), [Code::InvalidNumber]);
    assert_eq!(at(&text, &errors[0]), "1s");
    assert_eq!(
        errors[0].message,
        "'hung_after_ms' value '1s' is not a number"
    );
}

#[test]
fn a_hung_after_ms_of_zero_above_a_minute_or_under_three_ticks_is_refused() {
    for (value, message, help) in [
        (
            "0",
            "'hung_after_ms' must not be 0",
            "leave 'hung_after_ms' out for a replica that is never checked, or give 30 to 60000 milliseconds",
        ),
        (
            "60001",
            "hung_after_ms 60001 is above 60000 (one minute)",
            "give 30 to 60000 milliseconds",
        ),
        (
            "0xffff_ffff_ffff",
            "hung_after_ms 281474976710655 is above 60000 (one minute)",
            "give 30 to 60000 milliseconds",
        ),
        (
            "29",
            "hung_after_ms 29 is shorter than 3 ticks of the 100 Hz timer (30 ms): a healthy \
             replica could be reported hung",
            "a replica's tick count moves only once a tick (every 10 ms): give 30 to 60000 \
             milliseconds",
        ),
    ] {
        let text = two_replicas(&format!(r#"hung_after_ms="{value}""#));
        let errors = errors(&text, false);
        assert_eq!(codes(&errors), [Code::InvalidValue], "{value}");
        assert_eq!(at(&text, &errors[0]), value);
        assert_eq!(errors[0].message, message);
        assert_eq!(errors[0].help.as_deref(), Some(help));
    }
    // Three ticks exactly, and a minute exactly, are fine.
    for value in ["30", "60000"] {
        plan(&two_replicas(&format!(r#"hung_after_ms="{value}""#)));
    }
}

#[test]
fn a_misspelled_attribute_is_named_with_the_right_one() {
    let text = two_replicas(r#"hung_after="100""#);
    let errors = errors(&text, false);
    assert_eq!(codes(&errors), [Code::UnknownAttribute]);
    assert_eq!(
        errors[0].help.as_deref(),
        Some("did you mean 'hung_after_ms'?")
    );
}

#[test]
fn the_only_replica_cannot_be_restarted() {
    let text = r#"<system>
  <replica name="main" cores="0-1" restart="true" hung_after_ms="100" />
  <protection_domain name="a" replica="main">
    <program_image path="a.elf" />
  </protection_domain>
</system>"#;
    let errors = errors(text, false);
    assert_eq!(codes(&errors), [Code::ReplicaRestart]);
    assert_eq!(at(text, &errors[0]), "true");
    assert_eq!(
        errors[0].message,
        "replica 'main' cannot be restarted: it is the system's only replica, so none is left \
         to restart it when it stops"
    );
    // hung_after_ms alone is accepted there: no peer watches it, but nothing goes wrong.
    plan(&text.replace(r#" restart="true""#, ""));
}

#[test]
fn strict_refuses_the_replica_and_its_attributes() {
    let text = two_replicas(r#"restart="true" hung_after_ms="100""#);
    let checked = atoll_tool::check(&text, BOARD, true);
    assert!(checked.system.is_none());
    assert!(
        checked
            .diagnostics
            .iter()
            .all(|d| d.code == Code::StrictExtension),
        "{:#?}",
        checked.diagnostics
    );
}

/// Replicas r0, r2 and r3 each have a PD `s<r>`; replica r1 has `count` PDs `p<i>`, each
/// with a channel to every `s<r>` (both ends notifying). `restart` goes on replica `r0`.
/// With `grouped`, `s0`'s channels come first, else the channels go by receiving PD.
fn many_words(count: usize, restart: &str, grouped: bool) -> String {
    let mut xml = format!(
        "<system>\n<replica name=\"r0\" cores=\"0\" {restart} />\n<replica name=\"r1\" \
         cores=\"1\" />\n<replica name=\"r2\" cores=\"2\" />\n<replica name=\"r3\" cores=\"3\" />\n"
    );
    for s in [0, 2, 3] {
        xml += &format!(
            "<protection_domain name=\"s{s}\" replica=\"r{s}\"><program_image path=\"s.elf\" \
             /></protection_domain>\n"
        );
    }
    for i in 0..count {
        xml += &format!(
            "<protection_domain name=\"p{i}\" replica=\"r1\"><program_image path=\"p.elf\" \
             /></protection_domain>\n"
        );
    }
    // (k, i): the channel between s<[0, 2, 3][k]> (its id i) and p<i> (its id k).
    let pairs: Vec<(usize, usize)> = if grouped {
        (0..3)
            .flat_map(|k| (0..count).map(move |i| (k, i)))
            .collect()
    } else {
        (0..count)
            .flat_map(|i| (0..3).map(move |k| (k, i)))
            .collect()
    };
    for (k, i) in pairs {
        let s = [0, 2, 3][k];
        xml += &format!(
            "<channel><end pd=\"s{s}\" id=\"{i}\" /><end pd=\"p{i}\" id=\"{k}\" /></channel>\n"
        );
    }
    xml + "</system>\n"
}

#[test]
fn a_restartable_replica_with_a_word_past_63_is_refused() {
    // By receiving PD, s0's word towards p21 is word 66: 6 for p0, then 3 a PD.
    let text = many_words(22, r#"restart="true""#, false);
    let errors = errors(&text, false);
    assert_eq!(codes(&errors), [Code::ReplicaRestart]);
    assert_eq!(at(&text, &errors[0]), "true");
    assert_eq!(
        errors[0].message,
        "replica 'r0' has too many cross-replica channel words to be restarted: a restart \
         clears its words by a 64-bit mask, which has no bit for its word 66 (from replica 'r0' \
         to PD 'p21')"
    );
    // With four more PDs, more of its words are past 63, and counted.
    let errors = self::errors(&many_words(26, r#"restart="true""#, false), false);
    assert!(
        errors[0]
            .message
            .ends_with("for its word 66 (from replica 'r0' to PD 'p21'), nor for 4 more"),
        "{}",
        errors[0].message
    );
    // The same channels, r0's first: its words are 0 to 22, which its restart clears.
    plan(&many_words(22, r#"restart="true""#, true));
    // Without restart, words past 63 are fine.
    plan(&many_words(22, "", false));
}

/// PD `name`'s plan.
fn pd<'p>(plan: &'p Plan, name: &str) -> &'p atoll_tool::plan::PdPlan {
    plan.replicas
        .iter()
        .flat_map(|r| &r.protection_domains)
        .find(|pd| pd.name == name)
        .expect("the PD")
}

/// The `atoll_peer_channels` patch of PD `name`: whether it is optional, and its words.
fn peer_channels(plan: &Plan, name: &str) -> (bool, Vec<u64>) {
    let patch = pd(plan, name)
        .symbols
        .iter()
        .find(|s| s.symbol == PEER_CHANNELS_SYMBOL)
        .expect("an atoll_peer_channels patch");
    let PatchValue::Words(words) = &patch.value else {
        panic!("{:?}", patch.value)
    };
    (patch.optional, words.clone())
}

#[test]
fn each_pd_gets_its_channels_by_the_replica_of_their_other_end() {
    let text = r#"<system>
  <replica name="r0" cores="0" />
  <replica name="r1" cores="1" restart="true" />
  <replica name="r2" cores="2-3" />
  <protection_domain name="a" replica="r0"><program_image path="a.elf" /></protection_domain>
  <protection_domain name="local" replica="r0"><program_image path="l.elf" /></protection_domain>
  <protection_domain name="b" replica="r1"><program_image path="b.elf" /></protection_domain>
  <protection_domain name="c" replica="r2"><program_image path="c.elf" /></protection_domain>
  <channel><end pd="a" id="1" /><end pd="b" id="7" /></channel>
  <channel><end pd="a" id="2" notify="false" /><end pd="b" id="8" /></channel>
  <channel><end pd="a" id="4" /><end pd="c" id="0" /></channel>
  <channel><end pd="a" id="9" /><end pd="local" id="0" /></channel>
  <channel><end pd="c" id="61" /><end pd="b" id="0" /></channel>
</system>"#;
    let plan = plan(text);
    let expected: [(&str, [u64; 8]); 4] = [
        // Channels within its own replica (9 for a) never count.
        ("a", [0, 1 << 1 | 1 << 2, 1 << 4, 0, 0, 0, 0, 0]),
        ("local", [0; 8]),
        ("b", [1 << 7 | 1 << 8, 0, 1 << 0, 0, 0, 0, 0, 0]),
        ("c", [1 << 0, 1 << 61, 0, 0, 0, 0, 0, 0]),
    ];
    for (name, words) in expected {
        assert_eq!(peer_channels(&plan, name), (true, words.to_vec()), "{name}");
    }
    // Microkit's own symbols stay mandatory.
    let mandatory: Vec<&str> = pd(&plan, "a")
        .symbols
        .iter()
        .filter(|s| !s.optional)
        .map(|s| s.symbol.as_str())
        .collect();
    assert_eq!(
        mandatory,
        [
            "microkit_name",
            "microkit_passive",
            "microkit_notifications",
            "microkit_pps",
            "microkit_irqs"
        ]
    );
}

#[test]
fn the_plan_and_both_reports_carry_restart_and_hung_after_ms() {
    let plan = plan(&two_replicas(r#"restart="true" hung_after_ms="250""#));
    let replicas: Vec<(&str, bool, Option<u32>)> = plan
        .replicas
        .iter()
        .map(|r| (r.name.as_str(), r.restart, r.hung_after_ms))
        .collect();
    assert_eq!(
        replicas,
        [("main", false, None), ("worker", true, Some(250))]
    );
    let json: serde_json::Value = serde_json::from_str(&report::json(&plan)).expect("JSON");
    let fields: Vec<(serde_json::Value, serde_json::Value)> = json["replicas"]
        .as_array()
        .expect("replicas")
        .iter()
        .map(|r| (r["restart"].clone(), r["hung_after_ms"].clone()))
        .collect();
    assert_eq!(
        fields,
        [
            (serde_json::json!(false), serde_json::Value::Null),
            (serde_json::json!(true), serde_json::json!(250)),
        ]
    );
    let symbol = &json["replicas"][0]["protection_domains"][0]["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .find(|s| s["symbol"] == PEER_CHANNELS_SYMBOL)
        .expect("the peer channels")
        .clone();
    assert_eq!(
        symbol["value"]["words"],
        serde_json::json!(["0x0", "0x8", "0x0", "0x0", "0x0", "0x0", "0x0", "0x0"])
    );
    assert_eq!(symbol["optional"], serde_json::json!(true));
    let text = report::text(&plan);
    assert!(
        text.contains("KiB left free, restarted when it stops, hung after 250 ms frozen\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "atoll_peer_channels = [0x0, 0x8, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0] (if the program has it)"
        ),
        "{text}"
    );
}
