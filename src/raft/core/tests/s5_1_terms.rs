//! §5.1 terms: stale terms are refused, higher terms are adopted.

use super::*;

#[test]
fn s5_1_stale_term_requests_are_rejected_with_the_current_term() {
    let mut c = core("v", 2);
    c.step(Input::Request(heartbeat(5, "L")));
    let out = c.step(Input::Request(vote_req(4, "a", 10, 10)));
    assert_eq!(out, vec![Output::Reply(vote_resp(5, false))]);
    let out = c.step(Input::Request(heartbeat(3, "old")));
    assert_eq!(
        out,
        vec![Output::Reply(Message::AppendResponse(AppendResponse {
            term: 5,
            success: false,
            node_id: Some("v".into()),
            ..Default::default()
        }))]
    );
    assert_eq!(c.leader().map(|l| l.id.as_str()), Some("L"));
}

#[test]
fn s5_1_a_higher_term_forces_a_leader_to_step_down() {
    let mut c = core("a", 2);
    elect(&mut c);
    let out = c.step(Input::Response {
        from: peer(0),
        msg: Message::AppendResponse(AppendResponse {
            term: 7,
            success: false,
            ..Default::default()
        }),
    });
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.term(), 7);
    assert_eq!(c.leader(), None);
    assert_eq!(
        out,
        vec![Output::SaveHardState(HardState {
            term: 7,
            voted_for: None
        })]
    );
    // And a heartbeat of a higher term makes a candidate a follower of its sender.
    let mut c = core("b", 2);
    tick_until_campaign(&mut c);
    c.step(Input::Request(heartbeat(1, "x")));
    assert_eq!(c.role(), Role::Follower);
    assert_eq!(c.leader().unwrap().id, "x");
}
