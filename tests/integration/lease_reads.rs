//! Lease reads (`raft::core::lease`) on real processes: `consistency=lease` and the counter of
//! lease reads, and a leader SIGSTOPped while lease reads are in flight, replaced, and
//! SIGCONTed, which must not answer the value the new leader overwrote.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::cluster_proc::ProcCluster;
use crate::helpers::{client, poll_until, put};

/// One `GET /get` with its own timeout: (status, value) or `None` when it got no answer.
async fn read(base: &str, key: &str, consistency: &str) -> Option<(u16, Option<String>)> {
    let mut res = client()
        .get(format!("{base}/get?key={key}{consistency}"))
        .timeout(Duration::from_secs(8))
        .send()
        .await
        .ok()?;
    let body = res.body().await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some((
        res.status().as_u16(),
        v["value"].as_str().map(str::to_owned),
    ))
}

async fn metrics(base: &str) -> String {
    let mut res = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("metrics answered");
    String::from_utf8_lossy(&res.body().await.expect("body")).into_owned()
}

#[actix_web::test]
async fn lease_reads_are_served_and_counted_and_consistency_is_checked() {
    let cluster = ProcCluster::start(3);
    let (l, _) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let base = cluster.url(l);
    assert_eq!(put(&base, "k", "v1").await.0, 200);
    for c in [
        "",
        "&consistency=linearizable",
        "&consistency=lease",
        "&consistency=stale",
    ] {
        let got = read(&base, "k", c).await;
        assert_eq!(got, Some((200, Some("v1".into()))), "{c}");
    }
    // A follower answers `lease` as `linearizable` (here: forwarded to the leader).
    let f = (l + 1) % 3;
    let got = read(&cluster.url(f), "k", "&consistency=lease").await;
    assert_eq!(got, Some((200, Some("v1".into()))));
    let got = read(&base, "k", "&consistency=eventual").await;
    assert_eq!(got.map(|g| g.0), Some(400));
    // Within a while the leader holds its lease and counts lease reads.
    let counted = poll_until(Duration::from_secs(5), || async {
        let _ = read(&base, "k", "").await;
        let m = metrics(&base).await;
        match m.lines().any(|l| {
            l.starts_with("kvstore_linearizable_reads_total{path=\"lease\"}") && !l.ends_with(" 0")
        }) {
            true => Ok(()),
            false => Err(m),
        }
    })
    .await;
    if let Err(m) = counted {
        panic!("no lease read counted:\n{m}");
    }
    // `/health` says who holds a lease: the leader (once it holds one), no follower.
    let leased = poll_until(Duration::from_secs(5), || async {
        let h = cluster.health(l).await;
        match h.as_ref().map(|h| h["lease"] == true) {
            Some(true) => Ok(()),
            _ => Err(h),
        }
    })
    .await;
    assert!(
        leased.is_ok(),
        "the leader's /health shows no lease: {leased:?}"
    );
    let fh = cluster.health(f).await.expect("follower health");
    assert_eq!(fh["lease"], false, "{fh}");
}

/// What one read saw: when it was sent and answered, and its answer.
#[derive(Debug, Clone)]
struct Seen {
    sent: Instant,
    answered: Instant,
    answer: Option<(u16, Option<String>)>,
}

#[actix_web::test]
async fn a_paused_leader_never_answers_a_lease_read_stale() {
    let mut cluster = ProcCluster::start(3);
    let (old, term) = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let base = cluster.url(old);
    assert_eq!(put(&base, "k", "old").await.0, 200);
    // Readers hammer the leader: reads are in flight when it is paused.
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let stop = Rc::new(RefCell::new(false));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (seen, stop, base) = (seen.clone(), stop.clone(), base.clone());
        readers.push(actix_web::rt::spawn(async move {
            while !*stop.borrow() {
                let sent = Instant::now();
                let answer = read(&base, "k", "").await;
                seen.borrow_mut().push(Seen {
                    sent,
                    answered: Instant::now(),
                    answer,
                });
            }
        }));
    }
    // Let some lease reads through first.
    poll_until(Duration::from_secs(5), || async {
        match seen.borrow().len() > 20 {
            true => Ok(()),
            false => Err(()),
        }
    })
    .await
    .expect("reads answered before the pause");
    let paused_at = Instant::now();
    cluster.process(old).signal(libc::SIGSTOP);
    // Another node is elected (the paused one cannot answer /health).
    let others: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    let new = poll_until(Duration::from_secs(10), || async {
        for &i in &others {
            if let Some(h) = cluster.health(i).await {
                if h["state"] == "leader" && h["term"].as_u64() > Some(term) {
                    return Ok(i);
                }
            }
        }
        Err(())
    })
    .await;
    let Ok(new) = new else {
        cluster.process(old).signal(libc::SIGCONT);
        panic!("no new leader while the old one was paused");
    };
    let (status, _, _) = put(&cluster.url(new), "k", "new").await;
    let written = Instant::now();
    cluster.process(old).signal(libc::SIGCONT);
    assert_eq!(status, 200, "the write on the new leader");
    // The old leader comes back as a follower; reads go on meanwhile.
    let back = poll_until(Duration::from_secs(10), || async {
        match cluster.health(old).await {
            Some(h) if h["state"] == "follower" => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let settle = Instant::now() + Duration::from_millis(500);
    poll_until(Duration::from_secs(2), || async {
        match Instant::now() >= settle {
            true => Ok(()),
            false => Err(()),
        }
    })
    .await
    .ok();
    *stop.borrow_mut() = true;
    for r in readers {
        let _ = r.await;
    }
    back.expect("the old leader rejoins as a follower");
    let seen = seen.borrow();
    let stale: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.answered > written)
        .filter(|s| matches!(&s.answer, Some((200, Some(v))) if v == "old"))
        .collect();
    // A read sent after the write was acknowledged must see it (linearizability).
    let after: Vec<&&Seen> = stale.iter().filter(|s| s.sent > written).collect();
    assert!(
        after.is_empty(),
        "stale reads sent after the write: {after:?}"
    );
    // A read in flight across the pause is answered only if the lease was checked again after
    // the value was taken: it must not return the old value either (the only window left is
    // between that check and the socket write, microseconds, not the pause).
    assert!(
        stale.is_empty(),
        "reads in flight across the pause (from {paused_at:?}) answered the overwritten value \
         after the write: {stale:?}"
    );
    let after_write = seen.iter().filter(|s| s.answered > written).count();
    assert!(after_write > 0, "no read was answered after the write");
}
