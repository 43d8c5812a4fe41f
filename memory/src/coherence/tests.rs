//! Scenario tests of the coherence tracker; `model.rs` checks it against a reference.

use super::*;
use crate::tiers::TierCost;

use crate::test_support::{lavapipe, m, swiftshader};

fn sites(members: &[usize], host: bool) -> Sites {
    let s = Sites::from(members.iter().copied().collect::<Members>());
    if host {
        s.with(Site::HOST)
    } else {
        s
    }
}

fn r(a: u64, b: u64) -> Range {
    Range::new(a, b)
}

/// Two members with mirrored device-local memory (lavapipe + SwiftShader: staging only).
fn mixed() -> Tracker {
    Tracker::new(Topology::new(&[lavapipe(), swiftshader()]))
}

fn mirrored_buffer(t: &mut Tracker, id: u64, len: u64) {
    let sharing = t.topology().mirrored(t.alive());
    t.create(id, ResourceDesc::buffer(len, sharing), Sites::all(8))
        .unwrap();
}

fn segs(t: &Tracker, id: u64) -> Vec<(u64, u64, Sites)> {
    t.segments(id)
        .unwrap()
        .into_iter()
        .map(|(r, s)| (r.start, r.end, s))
        .collect()
}

#[test]
fn new_resources_are_current_everywhere() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 100);
    assert_eq!(segs(&t, 1), vec![(0, 100, sites(&[0, 1], false))]);
    // No host storage: the host is not a holder even though `initial` names it.
    assert_eq!(t.holders(1, 0), Some(sites(&[0, 1], false)));
    assert_eq!(t.holders(1, 100), None);
    assert_eq!(t.holders(2, 0), None);
    let plan = t
        .plan_batch(&BatchAccess::new().read(1, Range::WHOLE), 1)
        .unwrap();
    assert!(plan.transfers().is_empty());
    assert_eq!(
        t.create(1, ResourceDesc::buffer(1, Sharing::default()), Sites::EMPTY),
        Err(CoherenceError::DuplicateResource(1))
    );
}

#[test]
fn write_then_read_elsewhere_needs_one_transfer() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 100);
    let a = t
        .plan_batch(&BatchAccess::new().write(1, r(10, 30)), 0)
        .unwrap();
    t.commit_batch(&a).unwrap();
    assert_eq!(
        segs(&t, 1),
        vec![
            (0, 10, sites(&[0, 1], false)),
            (10, 30, sites(&[0], false)),
            (30, 100, sites(&[0, 1], false)),
        ]
    );
    let b = t
        .plan_batch(&BatchAccess::new().read(1, r(0, 50)).write(1, r(40, 45)), 1)
        .unwrap();
    assert_eq!(
        b.transfers(),
        &[Transfer {
            id: 1,
            range: r(10, 30),
            src: m(0),
            dst: m(1),
            tier: Tier::Staging,
            bytes: 20,
            cost_ns: t.topology().costs().staging.time_ns(20),
        }]
    );
    assert_eq!(b.bytes(), 20);
    assert_eq!(b.cost_ns(), t.topology().costs().staging.time_ns(20));
    assert_eq!(b.reads(), &[(1, r(0, 50))]);
    assert_eq!(b.writes(), &[(1, r(40, 45))]);
    t.commit_batch(&b).unwrap();
    // Transferred units merge back with their neighbours; the batch's write is member 1's.
    assert_eq!(
        segs(&t, 1),
        vec![
            (0, 40, sites(&[0, 1], false)),
            (40, 45, sites(&[1], false)),
            (45, 100, sites(&[0, 1], false)),
        ]
    );
}

#[test]
fn a_plan_is_valid_only_against_its_state() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 10);
    let p = t
        .plan_batch(&BatchAccess::new().write(1, Range::WHOLE), 0)
        .unwrap();
    let q = t
        .plan_batch(&BatchAccess::new().read(1, Range::WHOLE), 1)
        .unwrap();
    t.commit_batch(&p).unwrap();
    assert_eq!(t.commit_batch(&q), Err(CoherenceError::StalePlan));
    assert_eq!(t.commit_batch(&p), Err(CoherenceError::StalePlan));
    // Dropping a plan changes nothing; replanning sees the write.
    let q = t
        .plan_batch(&BatchAccess::new().read(1, Range::WHOLE), 1)
        .unwrap();
    assert_eq!(q.transfers().len(), 1);
    t.topology_mut()
        .set_cost(Tier::Staging, TierCost::new(1, 1));
    assert_eq!(t.commit_batch(&q), Err(CoherenceError::StalePlan));
}

#[test]
fn whole_resource_writes_collapse_the_map() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 1000);
    for i in 0..50 {
        t.write(1, r(i * 20, i * 20 + 10), (i % 2) as usize)
            .unwrap();
    }
    assert!(t.summary().segments > 50);
    let p = t
        .plan_batch(&BatchAccess::new().write(1, Range::WHOLE), 1)
        .unwrap();
    assert_eq!(p.writes(), &[(1, r(0, 1000))]);
    t.commit_batch(&p).unwrap();
    assert_eq!(segs(&t, 1), vec![(0, 1000, sites(&[1], false))]);
}

#[test]
fn overlapping_accesses_are_merged() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 100);
    mirrored_buffer(&mut t, 2, 100);
    t.write(1, Range::WHOLE, 0).unwrap();
    t.write(2, Range::WHOLE, 0).unwrap();
    let access = BatchAccess::new()
        .read(2, r(50, 60))
        .read(1, r(0, 10))
        .read(1, r(5, 20))
        .read(1, r(20, 25))
        .read(1, r(90, 200))
        .write(1, r(0, 5))
        .write(1, r(3, 8));
    let p = t.plan_batch(&access, 1).unwrap();
    assert_eq!(p.reads(), &[(1, r(0, 25)), (1, r(90, 100)), (2, r(50, 60))]);
    assert_eq!(p.writes(), &[(1, r(0, 8))]);
    let ranges: Vec<(u64, Range)> = p.transfers().iter().map(|x| (x.id, x.range)).collect();
    assert_eq!(ranges, vec![(1, r(0, 25)), (1, r(90, 100)), (2, r(50, 60))]);
}

#[test]
fn adjacent_runs_from_one_source_are_one_transfer() {
    let caps = [lavapipe(), swiftshader(), swiftshader()];
    let mut t = Tracker::new(Topology::new(&caps));
    let sharing = Sharing::mirrored(Members(0b111));
    t.create(1, ResourceDesc::buffer(30, sharing), Sites::all(3))
        .unwrap();
    // Units 0..10 held by {0}, 10..20 by {0,1}, 20..30 by {1}; read on member 2.
    t.write(1, r(0, 20), 0).unwrap();
    t.write(1, r(20, 30), 1).unwrap();
    let x = t.read_plan(1, r(10, 20), m(1)).unwrap();
    t.commit_transfers(&x).unwrap();
    assert_eq!(t.holders(1, 15), Some(sites(&[0, 1], false)));
    let plan = t.read_plan(1, Range::WHOLE, m(2)).unwrap();
    // 1 and 2 share device memory (same driver): the middle run comes from 1, and so does
    // the last; one transfer covers both.
    let got: Vec<(Range, Site, Tier)> = plan.iter().map(|x| (x.range, x.src, x.tier)).collect();
    assert_eq!(
        got,
        vec![
            (r(0, 10), m(0), Tier::Staging),
            (r(10, 30), m(1), Tier::SharedDevice)
        ]
    );
    assert_eq!(plan[1].bytes, 20);
}

#[test]
fn host_writes_into_imported_memory_reach_every_importer() {
    // Two lavapipes import host memory; the SwiftShader gets a copy of its own.
    let caps = [lavapipe(), lavapipe(), swiftshader()];
    let mut t = Tracker::new(Topology::new(&caps));
    let sharing = t.topology().host_visible(Members(0b111));
    t.create(7, ResourceDesc::buffer(64, sharing), Sites::all(3))
        .unwrap();
    t.host_write(7, r(0, 32)).unwrap();
    assert_eq!(t.holders(7, 0), Some(sites(&[0, 1], true)));
    // Lavapipes read it with no transfer; the SwiftShader needs one, from a lavapipe (the
    // host and the lavapipes tie on staging; members come first).
    for on in [0, 1] {
        let p = t
            .plan_batch(&BatchAccess::new().read(7, Range::WHOLE), on)
            .unwrap();
        assert!(p.transfers().is_empty());
    }
    let p = t
        .plan_batch(&BatchAccess::new().read(7, r(0, 64)), 2)
        .unwrap();
    assert_eq!(p.transfers().len(), 1);
    assert_eq!(p.transfers()[0].range, r(0, 32));
    assert_eq!(p.transfers()[0].src, m(0));
    // A write on a lavapipe is a write into the shared host allocation.
    t.write(7, r(0, 8), 1).unwrap();
    assert_eq!(t.holders(7, 0), Some(sites(&[0, 1], true)));
    // A write on the SwiftShader leaves the host stale; mapping it back needs a transfer.
    t.write(7, r(8, 16), 2).unwrap();
    let back = t.read_plan(7, r(0, 16), Site::HOST).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!((back[0].range, back[0].src), (r(8, 16), m(2)));
    assert_eq!(back[0].tier, Tier::Staging);
    t.commit_transfers(&back).unwrap();
    assert_eq!(t.holders(7, 10), Some(sites(&[0, 1, 2], true)));
}

#[test]
fn host_shadow_is_current_alone_after_a_host_write() {
    let mut t = mixed();
    let sharing = Sharing::new(vec![
        Storage {
            sites: Sites::HOST,
            owner: Site::HOST,
        },
        Storage {
            sites: sites(&[0], false),
            owner: m(0),
        },
        Storage {
            sites: sites(&[1], false),
            owner: m(1),
        },
    ])
    .unwrap();
    t.create(3, ResourceDesc::buffer(16, sharing), Sites::all(2))
        .unwrap();
    t.host_write(3, Range::WHOLE).unwrap();
    assert_eq!(segs(&t, 3), vec![(0, 16, Sites::HOST)]);
    let p = t
        .plan_batch(&BatchAccess::new().read(3, Range::WHOLE), 0)
        .unwrap();
    assert_eq!(p.transfers()[0].src, Site::HOST);
    // Member 0 imports host memory: one copy by member 0 from the shadow.
    assert_eq!(p.transfers()[0].tier, Tier::SharedHost);
}

#[test]
fn images_are_tracked_by_subresource() {
    let mut t = mixed();
    let img = SubresourceLayout {
        planes: 1,
        mips: 4,
        layers: 6,
    };
    let sharing = t.topology().mirrored(t.alive());
    t.create(9, ResourceDesc::image(img, 1 << 16, sharing), Sites::all(2))
        .unwrap();
    // Member 0 renders into mip 0, layers 2..4.
    let mut access = BatchAccess::new();
    for x in img.ranges(1, 0, 1, 2, 2).ranges() {
        access = access.write(9, *x);
    }
    let p = t.plan_batch(&access, 0).unwrap();
    t.commit_batch(&p).unwrap();
    // Member 1 samples the whole mip chain.
    let mut access = BatchAccess::new();
    for x in img.ranges(1, 0, u32::MAX, 0, u32::MAX).ranges() {
        access = access.read(9, *x);
    }
    let p = t.plan_batch(&access, 1).unwrap();
    assert_eq!(p.transfers().len(), 1);
    let x = p.transfers()[0];
    assert_eq!(x.bytes, 2 << 16);
    assert_eq!(
        img.runs(x.range),
        vec![crate::range::SubresourceRun {
            plane: 0,
            mip: 0,
            base_layer: 2,
            layers: 2
        }]
    );
}

#[test]
fn refusals_leave_the_state_unchanged() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 10);
    let host_only = Sharing::shared(Sites::HOST, Site::HOST).unwrap();
    t.create(2, ResourceDesc::buffer(10, host_only), Sites::all(2))
        .unwrap();
    let before = t.summary();
    assert_eq!(
        t.plan_batch(&BatchAccess::new().read(3, Range::WHOLE), 0),
        Err(CoherenceError::UnknownResource(3))
    );
    assert_eq!(
        t.plan_batch(&BatchAccess::new().read(1, Range::WHOLE), 2),
        Err(CoherenceError::BadMember(2))
    );
    assert_eq!(
        t.plan_batch(&BatchAccess::new().write(2, Range::WHOLE), 0),
        Err(CoherenceError::NoCopy { id: 2, site: m(0) })
    );
    assert_eq!(
        t.host_write(1, Range::WHOLE),
        Err(CoherenceError::NoCopy {
            id: 1,
            site: Site::HOST
        })
    );
    assert_eq!(
        t.write(1, Range::WHOLE, 9),
        Err(CoherenceError::BadMember(9))
    );
    assert_eq!(t.destroy(5), Err(CoherenceError::UnknownResource(5)));
    // A transfer from a site that does not hold the range.
    t.write(1, r(0, 5), 0).unwrap();
    let good = t.read_plan(1, Range::WHOLE, m(1)).unwrap();
    let mut bad = good[0];
    bad.src = m(1);
    bad.dst = m(0);
    assert_eq!(
        t.commit_transfers(&[good[0], bad]),
        Err(CoherenceError::BadTransfer(bad))
    );
    assert_eq!(t.holders(1, 0), Some(sites(&[0], false)));
    assert!(matches!(
        Sharing::new(vec![
            Storage {
                sites: sites(&[0], false),
                owner: m(0)
            },
            Storage {
                sites: sites(&[0, 1], false),
                owner: m(1)
            }
        ]),
        Err(CoherenceError::BadSharing(_))
    ));
    assert!(Sharing::shared(sites(&[0], false), m(1)).is_err());
    assert!(Sharing::shared(Sites::EMPTY, m(1)).is_err());
    assert!(t
        .create(
            4,
            ResourceDesc::buffer(1, Sharing::mirrored(Members(0b100))),
            Sites::EMPTY
        )
        .is_err());
    assert_eq!(t.summary().resources, before.resources);
}

#[test]
fn losing_the_only_holder_loses_data() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 100);
    t.write(1, r(20, 40), 1).unwrap();
    let report = t.lose_member(1).unwrap();
    assert_eq!(report.lost, vec![(1, r(20, 40))]);
    assert!(report.data_lost());
    assert!(report.orphaned.is_empty());
    assert_eq!(t.alive(), Members(0b1));
    assert_eq!(t.lost(), vec![(1, r(20, 40))]);
    assert_eq!(
        t.plan_batch(&BatchAccess::new().read(1, r(0, 30)), 0),
        Err(CoherenceError::DataLost {
            id: 1,
            range: r(20, 30)
        })
    );
    assert_eq!(
        t.plan_batch(&BatchAccess::new().read(1, r(0, 10)), 1),
        Err(CoherenceError::MemberLost(1))
    );
    assert_eq!(t.lose_member(1), Err(CoherenceError::MemberLost(1)));
    // Writing the lost units on a survivor restores them.
    t.write(1, r(0, 100), 0).unwrap();
    assert!(t.lost().is_empty());
    assert_eq!(t.sharing(1).unwrap().storages().len(), 1);
}

#[test]
fn shared_storage_survives_unless_its_owner_is_lost() {
    let caps = [lavapipe(), lavapipe(), swiftshader(), swiftshader()];
    let mut t = Tracker::new(Topology::new(&caps));
    // Buffer 1: host allocation imported by 0 and 1; 2 and 3 share 2's device memory.
    let sharing = t.topology().host_visible(Members(0b1111));
    t.create(1, ResourceDesc::buffer(10, sharing), Sites::all(4))
        .unwrap();
    t.write(1, r(0, 5), 0).unwrap(); // {0,1,host}
    t.write(1, r(5, 10), 3).unwrap(); // {2,3}
    let report = t.lose_member(0).unwrap();
    assert!(!report.data_lost(), "the host owns the shared allocation");
    assert_eq!(t.holders(1, 0), Some(sites(&[1], true)));
    let report = t.lose_member(2).unwrap();
    // 2 owned the device memory 3 imported: 3 is orphaned and the units it held are lost.
    assert_eq!(report.lost, vec![(1, r(5, 10))]);
    assert_eq!(report.orphaned, vec![(1, sites(&[3], false))]);
    assert_eq!(
        t.plan_batch(&BatchAccess::new().read(1, r(0, 5)), 3),
        Err(CoherenceError::NoCopy { id: 1, site: m(3) })
    );
    // The ICD gives member 3 a new allocation; it holds nothing yet.
    t.add_storage(
        1,
        Storage {
            sites: sites(&[3], false),
            owner: m(3),
        },
    )
    .unwrap();
    let p = t
        .plan_batch(&BatchAccess::new().read(1, r(0, 5)), 3)
        .unwrap();
    assert_eq!(p.transfers()[0].src, m(1));
    assert!(t
        .add_storage(
            1,
            Storage {
                sites: sites(&[3], false),
                owner: m(3)
            }
        )
        .is_err());
}

#[test]
fn loss_reports_batches_in_flight_on_the_member() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 10);
    mirrored_buffer(&mut t, 2, 10);
    t.write(1, Range::WHOLE, 1).unwrap();
    // a: on 0, reads 1 (transfer from member 1).
    let a = t
        .plan_batch(&BatchAccess::new().read(1, Range::WHOLE), 0)
        .unwrap();
    let a = t.commit_batch(&a).unwrap();
    // b: on 0, writes 2; c: on 1, writes 2.
    let b = t
        .plan_batch(&BatchAccess::new().write(2, Range::WHOLE), 0)
        .unwrap();
    let b = t.commit_batch(&b).unwrap();
    let c = t
        .plan_batch(&BatchAccess::new().write(2, r(0, 5)), 1)
        .unwrap();
    let c = t.commit_batch(&c).unwrap();
    assert_eq!(t.in_flight(), vec![a, b, c]);
    t.retire(b).unwrap();
    assert_eq!(t.retire(b), Err(CoherenceError::UnknownTicket(b)));
    let report = t.lose_member(1).unwrap();
    // a had a transfer from 1; c ran on 1.
    assert_eq!(report.in_flight, vec![a, c]);
    // c's units were held by 1 alone.
    assert_eq!(report.lost, vec![(2, r(0, 5))]);
    let failed = t.fail_batches(&[a, c]).unwrap();
    // a's transfer into 0 may be partial: member 0 held buffer 1 only through it.
    assert_eq!(failed.lost, vec![(1, r(0, 10))]);
    assert!(t.in_flight().is_empty());
    assert_eq!(t.fail_batches(&[a]), Err(CoherenceError::UnknownTicket(a)));
}

#[test]
fn failed_writes_are_forgiven_where_rewritten_later() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 100);
    // f on member 1 writes 0..50 and will fail; g on member 0 writes 40..60; then a completed
    // single write on member 0 covers 20..30.
    let f = t
        .plan_batch(&BatchAccess::new().write(1, r(0, 50)), 1)
        .unwrap();
    let f = t.commit_batch(&f).unwrap();
    let g = t
        .plan_batch(&BatchAccess::new().write(1, r(40, 60)), 0)
        .unwrap();
    let g = t.commit_batch(&g).unwrap();
    t.write(1, r(20, 30), 0).unwrap();
    let report = t.fail_batches(&[f]).unwrap();
    assert_eq!(report.lost, vec![(1, r(0, 20)), (1, r(30, 40))]);
    assert_eq!(t.holders(1, 25), Some(sites(&[0], false)));
    assert_eq!(t.holders(1, 45), Some(sites(&[0], false)));
    // g is still in flight and can fail on its own later.
    assert_eq!(t.in_flight(), vec![g]);
    let report = t.fail_batches(&[g]).unwrap();
    assert_eq!(report.lost, vec![(1, r(40, 60))]);
    assert_eq!(t.lost(), vec![(1, r(0, 20)), (1, r(30, 60))]);
}

#[test]
fn destroy_forgets_in_flight_records() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 10);
    let f = t
        .plan_batch(&BatchAccess::new().write(1, Range::WHOLE), 1)
        .unwrap();
    let f = t.commit_batch(&f).unwrap();
    t.destroy(1).unwrap();
    mirrored_buffer(&mut t, 1, 10);
    let report = t.fail_batches(&[f]).unwrap();
    assert!(!report.data_lost());
    assert_eq!(segs(&t, 1), vec![(0, 10, sites(&[0, 1], false))]);
}

#[test]
fn summary_counts() {
    let mut t = mixed();
    mirrored_buffer(&mut t, 1, 10);
    t.write(1, r(0, 4), 0).unwrap();
    let s = t.summary();
    assert_eq!(s.resources, 1);
    assert_eq!(s.units, 10);
    assert_eq!(s.segments, 2);
    assert_eq!(s.held[0], 10);
    assert_eq!(s.held[1], 6);
    assert_eq!(
        s.to_string(),
        "1 resources, 10 units in 2 runs, 0 lost, 0 batches in flight; held: 0=10 1=6"
    );
    assert_eq!(t.resources().collect::<Vec<_>>(), vec![1]);
    assert_eq!(t.resource_len(1), Ok(10));
}
