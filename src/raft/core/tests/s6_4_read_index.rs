//! Thesis §6.4 ReadIndex: reads wait for a quorum's answer sent after them; losing leadership
//! fails them.

use super::*;

#[test]
fn s6_4_read_index_waits_for_a_quorum_ack_sent_after_the_read() {
    let mut net = Net::three_with_leader(); // the no-op is committed by now
    assert_eq!(net.cores[0].commit_index(), 1);
    let out = net.step(0, Input::ReadIndex { id: 7 });
    assert!(
        out.is_empty(),
        "no answer before a quorum confirms leadership"
    );
    assert_eq!(net.queue.len(), 2, "one heartbeat round for the read");
    net.run();
    // The answers came through absorb(); look at what the leader produced last.
    let out = net.step(0, Input::ReadIndex { id: 8 });
    assert!(out.is_empty());
    // Drive the delivery by hand to see the ReadReady.
    let mut ready = Vec::new();
    while let Some((from, to, msg, is_request)) = net.queue.pop_front() {
        let out = if is_request {
            let o = net.cores[to].step(Input::Request(msg));
            net.absorb(to, o, Some(from))
        } else {
            let from = net.node_to_peer(from);
            let o = net.cores[to].step(Input::Response { from, msg });
            net.absorb(to, o, None)
        };
        ready.extend(out);
    }
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
    let mut net = Net::three_with_leader();
    net.step(0, Input::ReadIndex { id: 1 });
    net.queue.clear();
    let out = net.cores[0].step(Input::Request(heartbeat(9, "b")));
    assert!(out.contains(&Output::ReadFailed {
        id: 1,
        leader: Some(LeaderInfo {
            id: "b".into(),
            url: "http://b".into()
        })
    }));
}
