//! Thesis §6.4 ReadIndex: reads wait for a quorum's answer sent after them; losing leadership
//! fails them.

use super::*;

#[test]
fn s6_4_read_index_waits_for_a_quorum_ack_sent_after_the_read() {
    let mut net = three_with_leader(); // the no-op is committed by now
    assert_eq!(net.core(0).commit_index(), 1);
    let out = net.step(0, Input::ReadIndex { id: 7 });
    assert!(
        out.is_empty(),
        "no answer before a quorum confirms leadership"
    );
    assert_eq!(net.in_flight_len(), 2, "one heartbeat round for the read");
    net.deliver_all();
    let out = net.step(0, Input::ReadIndex { id: 8 });
    assert!(out.is_empty());
    // Deliver the heartbeat round and see what the leader produced.
    let ready = net.deliver_all();
    assert_eq!(ready, vec![Output::ReadReady { id: 8, index: 1 }]);
    // A follower cannot serve it.
    let out = net.step(1, Input::ReadIndex { id: 9 });
    assert!(matches!(
        out[0],
        Output::ReadFailed {
            id: 9,
            leader: Some(_)
        }
    ));
}

#[test]
fn s6_4_pending_reads_fail_when_leadership_is_lost() {
    let mut net = three_with_leader();
    net.step(0, Input::ReadIndex { id: 1 });
    net.drop_in_flight();
    let out = net.core_mut(0).step(Input::Request(heartbeat(9, "b")));
    assert!(out.contains(&Output::ReadFailed {
        id: 1,
        leader: Some(LeaderInfo {
            id: "b".into(),
            url: "http://b".into()
        })
    }));
}
