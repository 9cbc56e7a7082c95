//! Microkit's domain scheduler (`<domains>`): the model, every rule, the plan and the report.
#![forbid(unsafe_code)]

use atoll_tool::model::{DomainDuration, ScheduleEntry};
use atoll_tool::plan::{EntryPlan, Unit};

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;
const EXAMPLE: &str = include_str!("fixtures/examples/domains.xml");

/// The codes `text` raises, in order.
fn codes(text: &str) -> Vec<&'static str> {
    atoll_tool::check(text, BOARD, false)
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect()
}

/// A system with `domains` (the inside of `<domains>`) and one PD in domain `a`.
fn with_domains(domains: &str) -> String {
    format!(
        r#"<system>
  <domains>{domains}</domains>
  <protection_domain name="p" domain="a"><program_image path="p.elf" /></protection_domain>
</system>"#
    )
}

/// `count` schedule entries of domain `a`.
fn entries(count: usize) -> String {
    r#"<schedule_entry domain="a" duration="10 us" />"#.repeat(count)
}

#[test]
fn the_example_is_modelled_as_microkit_reads_it() {
    // Plain Microkit: --strict accepts it too.
    assert!(
        atoll_tool::check(EXAMPLE, BOARD, true)
            .diagnostics
            .is_empty()
    );
    let checked = atoll_tool::check(EXAMPLE, BOARD, false);
    assert!(!checked.has_errors(), "{:#?}", checked.diagnostics);
    let system = checked.system.expect("a model");
    let domains = system.domains.expect("domains");
    let ids: Vec<(&str, u8)> = domains.ids.iter().map(|(n, &i)| (n.as_str(), i)).collect();
    // `collector` has no id: it gets the lowest free one.
    assert_eq!(ids, [("monitor", 0), ("emitter", 1), ("collector", 2)]);
    assert_eq!((domains.start_index, domains.index_shift), (1, 0));
    let run = |domain, duration| ScheduleEntry::Run { domain, duration };
    assert_eq!(
        domains.schedule,
        [
            run(0, DomainDuration::Microseconds(2000)),
            run(1, DomainDuration::Microseconds(8000)),
            run(2, DomainDuration::Ticks(125_000)),
            run(0, DomainDuration::Microseconds(1000)),
            ScheduleEntry::EndMarker,
        ]
    );
    let pd_domains: Vec<Option<u8>> = system
        .protection_domains
        .values()
        .map(|pd| pd.domain)
        .collect();
    assert_eq!(pd_domains, [Some(1), Some(2), Some(2)]);
}

#[test]
fn without_domains_nothing_has_one() {
    let text = r#"<system><protection_domain name="p"><program_image path="p.elf" /></protection_domain></system>"#;
    let checked = atoll_tool::check(text, BOARD, false);
    let system = checked.system.expect("a model");
    assert_eq!(system.domains, None);
    assert_eq!(system.protection_domains["p"].domain, None);
    let plan = checked.plan.expect("a plan");
    assert_eq!(plan.replicas[0].domain_schedule, None);
    let json = atoll_tool::report::json(&plan);
    assert!(!json.contains(r#""domain""#) && !json.contains("domain_schedule"));
}

#[test]
fn ids_not_written_are_the_lowest_free_in_document_order() {
    let text = with_domains(
        r#"<domain name="a" /><domain name="b" id="0" /><domain name="c" /><domain name="d" id="2" /><domain name="e" />
           <domain_schedule><schedule_entry domain="a" duration="1 us" /></domain_schedule>"#,
    );
    let system = atoll_tool::check(&text, BOARD, false)
        .system
        .expect("a model");
    let ids: Vec<u8> = system.domains.expect("domains").ids.into_values().collect();
    assert_eq!(ids, [1, 0, 3, 2, 4]);
}

#[test]
fn at_most_sixteen_domains() {
    let declare = |count: usize| {
        let names: String = (0..count)
            .map(|i| format!(r#"<domain name="d{i}" />"#))
            .collect();
        with_domains(&format!(
            r#"<domain name="a" />{names}<domain_schedule>{}</domain_schedule>"#,
            entries(1)
        ))
    };
    assert_eq!(codes(&declare(15)), Vec::<&str>::new());
    assert_eq!(codes(&declare(16)), ["sdf::E100"]);
}

#[test]
fn schedule_length_and_shift_leave_the_kernels_last_entry_alone() {
    let schedule = |attributes: &str, count: usize| {
        with_domains(&format!(
            r#"<domain name="a" /><domain_schedule {attributes}>{}</domain_schedule>"#,
            entries(count)
        ))
    };
    assert_eq!(codes(&schedule("", 99)), Vec::<&str>::new());
    assert_eq!(codes(&schedule("", 100)), ["sdf::E102"]);
    assert_eq!(
        codes(&schedule(r#"index_shift="89""#, 10)),
        Vec::<&str>::new()
    );
    assert_eq!(codes(&schedule(r#"index_shift="90""#, 10)), ["sdf::E102"]);
    assert_eq!(
        codes(&schedule(r#"index_shift="0xffff_ffff_ffff_ffff""#, 1)),
        ["sdf::E102"]
    );
    assert_eq!(
        codes(&schedule(r#"start_index="9""#, 10)),
        Vec::<&str>::new()
    );
    assert_eq!(codes(&schedule(r#"start_index="10""#, 10)), ["sdf::E102"]);
    assert_eq!(codes(&schedule("", 0)), ["sdf::E102"]);
    assert_eq!(codes(&schedule(r#"start_index="x""#, 1)), ["sdf::E006"]);
}

#[test]
fn the_structure_of_domains() {
    let schedule = format!("<domain_schedule>{}</domain_schedule>", entries(1));
    // No <domain>, two schedules, an unknown child, attributes it does not take.
    let no_domain = with_domains(&schedule);
    assert!(codes(&no_domain).contains(&"sdf::E010"));
    let twice = with_domains(&format!(r#"<domain name="a" />{schedule}{schedule}"#));
    assert_eq!(codes(&twice), ["sdf::E010"]);
    let unknown = with_domains(&format!(r#"<domain name="a" /><domian />{schedule}"#));
    assert_eq!(codes(&unknown), ["sdf::E003"]);
    let attribute = with_domains(&format!(r#"<domain name="a" colour="red" />{schedule}"#));
    assert_eq!(codes(&attribute), ["sdf::E004"]);
    let stray = with_domains(
        r#"<domain name="a" /><domain_schedule><schedule_entry domain="a" duration="1 us" /><schedule_end /></domain_schedule>"#,
    );
    assert_eq!(codes(&stray), ["sdf::E003"]);
    let marker = with_domains(
        r#"<domain name="a" /><domain_schedule><schedule_entry domain="a" duration="1 us" /><schedule_end_marker domain="a" /></domain_schedule>"#,
    );
    assert_eq!(codes(&marker), ["sdf::E004"]);
    let missing = with_domains(
        r#"<domain name="a" /><domain_schedule><schedule_entry duration="1 us" /></domain_schedule>"#,
    );
    assert_eq!(codes(&missing), ["sdf::E005"]);
    // Hex and separators, as in every Microkit number.
    let hex = with_domains(
        r#"<domain name="a" id="0x0" /><domain name="b" id="0xf" /><domain_schedule><schedule_entry domain="a" duration="1 us" /><schedule_entry domain="b" duration="0x1_000 ticks" /></domain_schedule>"#,
    );
    assert_eq!(codes(&hex), Vec::<&str>::new());
}

#[test]
fn a_schedule_without_a_turn_for_the_monitors_domain_is_warned_of() {
    let schedule = |attributes: &str, entries: &str| {
        with_domains(&format!(
            r#"<domain name="a" id="1" /><domain name="m" id="0" /><domain_schedule {attributes}>{entries}</domain_schedule>"#
        ))
    };
    let a = r#"<schedule_entry domain="a" duration="1 us" />"#;
    let m = r#"<schedule_entry domain="m" duration="1 us" />"#;
    let end = "<schedule_end_marker />";
    assert_eq!(codes(&schedule("", a)), ["sdf::W003"]);
    assert_eq!(codes(&schedule("", &format!("{a}{m}"))), Vec::<&str>::new());
    // Entries before the start entry, or after an end marker, never run.
    let before = schedule(r#"start_index="1""#, &format!("{m}{a}"));
    assert_eq!(codes(&before), ["sdf::W003"]);
    assert_eq!(codes(&schedule("", &format!("{a}{end}{m}"))), ["sdf::W003"]);
    // A warning: the system is still accepted.
    assert!(
        atoll_tool::check(&schedule("", a), BOARD, false)
            .plan
            .is_some()
    );
}

#[test]
fn every_pd_children_included_names_its_domain() {
    let text = r#"<system>
  <domains><domain name="a" /><domain_schedule><schedule_entry domain="a" duration="1 us" /></domain_schedule></domains>
  <protection_domain name="parent" domain="a" priority="10">
    <program_image path="p.elf" />
    <protection_domain name="child" id="0" priority="5"><program_image path="c.elf" /></protection_domain>
  </protection_domain>
</system>"#;
    assert_eq!(codes(text), ["sdf::E005"]);
    let fixed = text.replace(r#"id="0""#, r#"id="0" domain="a""#);
    assert_eq!(codes(&fixed), Vec::<&str>::new());
}

#[test]
fn the_plan_and_report_show_domains_and_the_schedule() {
    let checked = atoll_tool::check(EXAMPLE, BOARD, false);
    let plan = checked.plan.expect("a plan");
    let replica = &plan.replicas[0];
    let domains: Vec<(&str, Option<u8>)> = replica
        .protection_domains
        .iter()
        .map(|pd| (pd.name.as_str(), pd.domain.as_ref().map(|d| d.id)))
        .collect();
    assert_eq!(
        domains,
        [
            ("emitter", Some(1)),
            ("collector", Some(2)),
            ("logger", Some(2))
        ]
    );
    let schedule = replica.domain_schedule.as_ref().expect("a schedule");
    assert_eq!(schedule.start, 1);
    let entry = |index, domain, duration, unit| EntryPlan {
        index,
        domain,
        duration,
        unit,
    };
    assert_eq!(
        schedule.entries,
        [
            entry(0, 0, 2000, Unit::Us),
            entry(1, 1, 8000, Unit::Us),
            entry(2, 2, 125_000, Unit::Ticks),
            entry(3, 0, 1000, Unit::Us),
            entry(4, 0, 0, Unit::EndMarker),
        ]
    );
    let text = atoll_tool::report::text(&plan);
    assert!(text.contains("PD emitter: priority 100, budget 1000 us, period 1000 us, core 0, domain emitter (1), image emitter.elf"), "{text}");
    assert!(
        text.contains(
            "domains: monitor (0), emitter (1), collector (2); the monitor runs in domain 0"
        ),
        "{text}"
    );
    assert!(
        text.contains("domain schedule, starting at entry 1:"),
        "{text}"
    );
    assert!(
        text.contains("entry  2: collector (2) for 125000 ticks"),
        "{text}"
    );
    assert!(text.contains("entry  4: end marker"), "{text}");
    let json = atoll_tool::report::json(&plan);
    assert!(json.contains(r#""unit": "ticks""#), "{json}");
}
