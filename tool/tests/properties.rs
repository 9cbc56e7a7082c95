//! Property tests: randomly generated valid systems check clean, and no input (random or
//! mutated XML) makes the tool panic.
#![forbid(unsafe_code)]

use std::fmt::Write;

use atoll_tool::diagnostics::{MessageFormat, Source, render};
use proptest::prelude::*;

const BOARD: &atoll_boards::Board = &atoll_boards::QEMU_VIRT_AARCH64;
const CORES: u32 = 4;

/// Random choices from which one valid system is built.
#[derive(Debug, Clone)]
struct Plan {
    /// Declared replicas: a core → cluster assignment; `None`: implied by `cpu`.
    clusters: Option<Vec<u32>>,
    /// Per PD: priority, core choice, passive, child-of choice, give cpu explicitly.
    pds: Vec<(u8, u32, bool, Option<usize>, bool)>,
    /// Per MR: size in pages, fixed paddr, large pages.
    mrs: Vec<(u64, bool, bool)>,
    /// Per map: PD choice, MR choice, gap pages, perms choice.
    maps: Vec<(usize, usize, u64, u8)>,
    /// Per channel: two PD choices, want pp, notify flags.
    channels: Vec<(usize, usize, bool, bool, bool)>,
    /// Per IRQ: PD choice.
    irqs: Vec<usize>,
}

fn plan() -> impl Strategy<Value = Plan> {
    (
        prop::option::of(prop::collection::vec(0..CORES, CORES as usize)),
        prop::collection::vec(
            (
                0u8..=254,
                0..CORES,
                any::<bool>(),
                prop::option::of(0usize..64),
                any::<bool>(),
            ),
            1..40,
        ),
        prop::collection::vec((1u64..8, any::<bool>(), any::<bool>()), 0..10),
        prop::collection::vec((0usize..64, 0usize..16, 0u64..4, 0u8..4), 0..30),
        prop::collection::vec(
            (
                0usize..64,
                0usize..64,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            0..40,
        ),
        prop::collection::vec(0usize..64, 0..10),
    )
        .prop_map(|(clusters, pds, mrs, maps, channels, irqs)| Plan {
            clusters,
            pds,
            mrs,
            maps,
            channels,
            irqs,
        })
}

/// What the generator expects the model to hold.
struct Expected {
    pds: usize,
    channels: usize,
    cross: usize,
    replicas: usize,
}

/// Builds a valid system description from `plan`.
fn build(plan: &Plan) -> (String, Expected) {
    let mut xml = String::from("<?xml version=\"1.0\"?>\n<system>\n");
    // Replicas: cluster ids renumbered in order of first appearance.
    let mut core_replica: Vec<usize> = (0..CORES as usize).collect();
    let mut replica_count = 0;
    if let Some(clusters) = &plan.clusters {
        let mut ids: Vec<u32> = Vec::new();
        for &c in clusters {
            if !ids.contains(&c) {
                ids.push(c);
            }
        }
        for (index, id) in ids.iter().enumerate() {
            let cores: Vec<String> = (0..CORES)
                .filter(|&core| clusters[core as usize] == *id)
                .map(|c| c.to_string())
                .collect();
            writeln!(
                xml,
                "  <replica name=\"rep{index}\" cores=\"{}\" />",
                cores.join(",")
            )
            .unwrap();
            for core in 0..CORES as usize {
                if clusters[core] == *id {
                    core_replica[core] = index;
                }
            }
        }
        replica_count = ids.len();
    }
    // PDs: a PD may be the child of an earlier root PD (one level), on its parent's core.
    let n = plan.pds.len().min(63);
    let mut core = vec![0u32; n];
    let mut parent: Vec<Option<usize>> = vec![None; n];
    for (i, &(_, c, _, child_of, _)) in plan.pds.iter().take(n).enumerate() {
        parent[i] = child_of
            .filter(|&p| p < i && parent[p].is_none())
            .filter(|_| i % 3 == 0);
        core[i] = parent[i].map_or(c, |p| core[p]);
    }
    let replica_of = |i: usize| {
        if plan.clusters.is_some() {
            core_replica[core[i] as usize]
        } else {
            core[i] as usize
        }
    };
    // MRs and their sizes.
    let mut sizes = Vec::new();
    let mut paddr = 0x1_0000_0000u64;
    for (i, &(pages, fixed, large)) in plan.mrs.iter().enumerate() {
        let page = if large { 0x20_0000 } else { 0x1000 };
        let size = pages * page;
        let mut attrs = format!("name=\"mr{i}\" size=\"{size:#x}\"");
        if large {
            attrs.push_str(" page_size=\"0x200_000\"");
        }
        if fixed {
            paddr = paddr.div_ceil(page) * page;
            write!(attrs, " phys_addr=\"{paddr:#x}\"").unwrap();
            paddr += size + page;
        }
        writeln!(xml, "  <memory_region {attrs} />").unwrap();
        sizes.push((size, page));
    }
    // Maps: per PD a cursor that only grows, so mappings never overlap.
    let mut pd_maps: Vec<Vec<String>> = vec![Vec::new(); n];
    let mut cursor = vec![0x1000_0000u64; n];
    let mut mapped = vec![false; sizes.len()];
    let mut map_plan: Vec<(usize, usize, u64, u8)> = plan.maps.clone();
    map_plan.extend((0..sizes.len()).map(|mr| (mr, mr, 0, 0)));
    for (pd, mr, gap, perms) in map_plan {
        if sizes.is_empty() {
            break;
        }
        let (pd, mr) = (pd % n, mr % sizes.len());
        let (size, page) = sizes[mr];
        let vaddr = (cursor[pd] + gap * page).div_ceil(page) * page;
        cursor[pd] = vaddr + size;
        let perms = ["r", "rw", "rx", "rwx"][perms as usize % 4];
        pd_maps[pd].push(format!(
            "<map mr=\"mr{mr}\" vaddr=\"{vaddr:#x}\" perms=\"{perms}\" />"
        ));
        mapped[mr] = true;
    }
    // Ids: one counter per PD shared by IRQs and channel ends.
    let mut next_id = vec![0u64; n];
    let mut pd_irqs: Vec<Vec<String>> = vec![Vec::new(); n];
    for (k, &pd) in plan.irqs.iter().enumerate() {
        let pd = pd % n;
        if next_id[pd] < 62 {
            pd_irqs[pd].push(format!("<irq irq=\"{}\" id=\"{}\" />", 40 + k, next_id[pd]));
            next_id[pd] += 1;
        }
    }
    let mut channels = String::new();
    let (mut channel_count, mut cross) = (0, 0);
    let priority = |i: usize| plan.pds[i].0;
    for &(a, b, want_pp, notify_a, notify_b) in &plan.channels {
        let (a, b) = (a % n, b % n);
        if a == b || next_id[a] >= 62 || next_id[b] >= 62 {
            continue;
        }
        let crosses = replica_of(a) != replica_of(b);
        let mut pp = ["", ""];
        if want_pp && !crosses && priority(a) != priority(b) {
            pp[usize::from(priority(a) > priority(b))] = " pp=\"true\"";
        }
        writeln!(
            channels,
            "  <channel>\n    <end pd=\"pd{a}\" id=\"{}\" notify=\"{notify_a}\"{} />\n    <end pd=\"pd{b}\" id=\"{}\" notify=\"{notify_b}\"{} />\n  </channel>",
            next_id[a], pp[0], next_id[b], pp[1]
        )
        .unwrap();
        next_id[a] += 1;
        next_id[b] += 1;
        channel_count += 1;
        cross += usize::from(crosses);
    }
    // Emit PDs, children nested in their parents.
    let place: Vec<String> = (0..n)
        .map(|i| {
            let explicit_cpu = plan.pds[i].4;
            match (parent[i], &plan.clusters) {
                (Some(p), _) => {
                    let sibling = parent[..i].iter().filter(|q| **q == Some(p)).count();
                    format!(" id=\"{sibling}\"")
                }
                (None, Some(_)) if !explicit_cpu => {
                    format!(" replica=\"rep{}\"", core_replica[core[i] as usize])
                }
                (None, Some(_)) => format!(" cpu=\"{}\"", core[i]),
                (None, None) if explicit_cpu || core[i] != 0 => format!(" cpu=\"{}\"", core[i]),
                (None, None) => String::new(),
            }
        })
        .collect();
    let body: Vec<Vec<String>> = pd_maps
        .into_iter()
        .zip(pd_irqs)
        .map(|(maps, irqs)| maps.into_iter().chain(irqs).collect())
        .collect();
    fn emit(
        xml: &mut String,
        i: usize,
        plan: &Plan,
        parent: &[Option<usize>],
        body: &[Vec<String>],
        place: &[String],
        indent: usize,
    ) {
        let (priority, _, passive, _, _) = plan.pds[i];
        let pad = " ".repeat(indent);
        writeln!(
            xml,
            "{pad}<protection_domain name=\"pd{i}\" priority=\"{priority}\" passive=\"{passive}\"{}>\n{pad}  <program_image path=\"pd{i}.elf\" />",
            place[i]
        )
        .unwrap();
        for line in &body[i] {
            writeln!(xml, "{pad}  {line}").unwrap();
        }
        for child in (0..parent.len()).filter(|&c| parent[c] == Some(i)) {
            emit(xml, child, plan, parent, body, place, indent + 2);
        }
        writeln!(xml, "{pad}</protection_domain>").unwrap();
    }
    for i in (0..n).filter(|&i| parent[i].is_none()) {
        emit(&mut xml, i, plan, &parent, &body, &place, 2);
    }
    xml.push_str(&channels);
    xml.push_str("</system>\n");
    let replicas = if plan.clusters.is_some() {
        replica_count
    } else {
        let mut used: Vec<u32> = core[..n].to_vec();
        used.sort_unstable();
        used.dedup();
        // Core 0 always runs a replica: it boots the machine.
        used.len() + usize::from(!used.contains(&0))
    };
    (
        xml,
        Expected {
            pds: n,
            channels: channel_count,
            cross,
            replicas,
        },
    )
}

fn render_all(checked: &atoll_tool::Checked, text: &str) {
    let source = Source::new("fuzz.xml", text.to_string());
    for diagnostic in &checked.diagnostics {
        for format in [
            MessageFormat::Human,
            MessageFormat::Short,
            MessageFormat::Json,
        ] {
            let rendered = render(diagnostic, &source, format, false);
            assert!(rendered.ends_with('\n'));
        }
    }
}

/// A valid system to mutate.
const SEED: &str = include_str!("fixtures/examples/sdf_reference.xml");

/// What every plan must satisfy: disjoint replica memory, no two placed things sharing a
/// byte, every object inside its replica, every channel end backed by its capability.
fn plan_invariants(plan: &atoll_tool::plan::Plan) -> Result<(), String> {
    use atoll_abi::pd::{PPC_BADGE, slot};
    use atoll_tool::plan::RegionHome;
    let within = |base: u64, size: u64, range: &atoll_tool::plan::Range| {
        base >= range.base && base + size <= range.base + range.size
    };
    let ram = BOARD.ram;
    let mut spans: Vec<(u64, u64, String)> = vec![
        (
            plan.kernel_shared.base,
            plan.kernel_shared.size,
            "kernel shared area".into(),
        ),
        (
            plan.shared_pool.base,
            plan.shared_pool.size,
            "shared pool".into(),
        ),
    ];
    for replica in &plan.replicas {
        spans.push((
            replica.ram.base,
            replica.ram.size,
            format!("replica {}", replica.name),
        ));
    }
    check_disjoint(&mut spans)?;
    for (base, size, what) in &spans {
        if *base < ram.base || base + size > ram.base + ram.size {
            return Err(format!("{what} lies outside RAM"));
        }
    }
    let mut pool: Vec<(u64, u64, String)> = Vec::new();
    for region in &plan.memory_regions {
        let size = region
            .size
            .next_multiple_of(region.page_size)
            .max(region.page_size);
        match (&region.home, region.phys_addr) {
            (RegionHome::Shared, Some(pa)) => {
                if !within(pa, size, &plan.shared_pool) {
                    return Err(format!("shared region {} outside the pool", region.name));
                }
                pool.push((pa, size, region.name.clone()));
            }
            (RegionHome::Replica(_) | RegionHome::Shared, None) => {
                return Err(format!("region {} not placed", region.name));
            }
            (RegionHome::FixedRam, Some(pa)) => {
                let overlaps = |base: u64, len: u64| pa < base + len && base < pa + size;
                let covered = plan
                    .replicas
                    .iter()
                    .any(|r| overlaps(r.ram.base, r.ram.size))
                    || overlaps(plan.shared_pool.base, plan.shared_pool.size);
                if covered {
                    return Err(format!(
                        "fixed region {} lies in memory given to others",
                        region.name
                    ));
                }
            }
            _ => {}
        }
    }
    check_disjoint(&mut pool)?;
    for replica in &plan.replicas {
        let mut placed: Vec<(u64, u64, String)> = Vec::new();
        for region in &plan.memory_regions {
            if region.home == RegionHome::Replica(replica.name.clone()) {
                let pa = region.phys_addr.ok_or("unplaced region")?;
                placed.push((
                    pa,
                    region
                        .size
                        .next_multiple_of(region.page_size)
                        .max(region.page_size),
                    region.name.clone(),
                ));
            }
        }
        for object in &replica.objects {
            let pa = object
                .phys_addr
                .ok_or(format!("object {} not placed", object.name))?;
            let size = (1u64 << object.size_bits) * object.count;
            if pa % (1 << object.size_bits) != 0 {
                return Err(format!("object {} misaligned", object.name));
            }
            placed.push((pa, size, object.name.clone()));
        }
        for (pa, size, what) in &placed {
            if !within(*pa, *size, &replica.ram)
                || *pa < replica.ram.base + atoll_tool::plan::KERNEL_RESERVE
            {
                return Err(format!(
                    "{what} outside replica {}'s free RAM",
                    replica.name
                ));
            }
        }
        check_disjoint(&mut placed)?;
    }
    let pd = |name: &str| {
        plan.replicas
            .iter()
            .flat_map(|r| &r.protection_domains)
            .find(|p| p.name == name)
    };
    for channel in &plan.channels {
        for (me, peer) in [(0, 1), (1, 0)] {
            let (name, id) = &channel.ends[me];
            let (peer_name, peer_id) = &channel.ends[peer];
            let caps = &pd(name)
                .ok_or(format!("channel end {name} unresolved"))?
                .capabilities;
            let has =
                |slot: u32, badge: u64| caps.iter().any(|c| c.slot == slot && c.badge == badge);
            if channel.notify[me] && !has(slot::OUTPUT_NOTIFICATION + u32::from(*id), 1 << peer_id)
            {
                return Err(format!(
                    "{name} may notify {peer_name} but has no capability for it"
                ));
            }
            if channel.pp_caller == Some(me)
                && !has(
                    slot::OUTPUT_ENDPOINT + u32::from(*id),
                    PPC_BADGE | u64::from(*peer_id),
                )
            {
                return Err(format!(
                    "{name} may call {peer_name} but has no endpoint capability"
                ));
            }
            if channel.cross_replica && channel.notify[me] {
                let bell = channel
                    .doorbells
                    .iter()
                    .find(|d| &d.from == name)
                    .ok_or("cross-replica notify without a doorbell")?;
                if !within(bell.pending_word, 64, &plan.kernel_shared) || bell.bit != *peer_id {
                    return Err(format!("doorbell {name} -> {peer_name} misplaced"));
                }
            }
        }
    }
    Ok(())
}

fn check_disjoint(spans: &mut [(u64, u64, String)]) -> Result<(), String> {
    spans.sort_by_key(|s| s.0);
    for pair in spans.windows(2) {
        if pair[0].0 + pair[0].1 > pair[1].0 {
            return Err(format!("{} overlaps {}", pair[0].2, pair[1].2));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_valid_systems_check_clean(plan in plan()) {
        let (xml, expected) = build(&plan);
        let checked = atoll_tool::check(&xml, BOARD, false);
        let errors: Vec<_> = checked.diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{xml}\n{errors:#?}");
        let system = checked.system.expect("a model");
        prop_assert_eq!(system.protection_domains.len(), expected.pds);
        prop_assert_eq!(system.channels.len(), expected.channels);
        prop_assert_eq!(system.channels.iter().filter(|c| c.cross_replica).count(), expected.cross);
        let with_pds = system.replicas.values().filter(|r| !r.protection_domains.is_empty()).count();
        prop_assert!(with_pds <= expected.replicas && system.replicas.len() == expected.replicas);
        for channel in &system.channels {
            let [a, b] = &channel.ends;
            let replica = |end: &atoll_tool::model::ChannelEnd| system.protection_domains[end.pd].replica;
            prop_assert_eq!(channel.cross_replica, replica(a) != replica(b));
        }
        let plan = checked.plan.expect("a plan");
        if let Err(broken) = plan_invariants(&plan) {
            prop_assert!(false, "{xml}\nplan invariant broken: {broken}");
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        let checked = atoll_tool::check(&text, BOARD, false);
        render_all(&checked, &text);
    }

    #[test]
    fn mutated_xml_never_panics(
        edits in prop::collection::vec((0usize..4000, 0usize..12, "[<>/=\"a-z0-9_ x&;!-]{0,12}"), 1..8),
        strict in any::<bool>(),
    ) {
        let mut text = SEED.to_string();
        for (at, remove, insert) in edits {
            let mut start = at % (text.len() + 1);
            while !text.is_char_boundary(start) { start -= 1; }
            let mut end = (start + remove).min(text.len());
            while !text.is_char_boundary(end) { end += 1; }
            text.replace_range(start..end, &insert);
        }
        let checked = atoll_tool::check(&text, BOARD, strict);
        render_all(&checked, &text);
    }

    #[test]
    fn attribute_values_never_panic(value in "[0-9a-fx_ ,\\-]{0,24}", attribute in 0usize..12) {
        let attributes = ["priority", "budget", "period", "stack_size", "cpu", "size", "phys_addr", "vaddr", "id", "irq", "slot", "cores"];
        let text = SEED.replace("priority=\"200\"", &format!("{}=\"{value}\"", attributes[attribute]))
            .replace("vaddr=\"0x500_0000\"", &format!("vaddr=\"{value}\""))
            .replace("irq=\"33\"", &format!("irq=\"{value}\""));
        let checked = atoll_tool::check(&text, BOARD, false);
        render_all(&checked, &text);
    }
}
