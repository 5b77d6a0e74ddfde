//! `kvstore get|set|delete`, `kvstore member list|add|remove|promote` and `kvstore leader
//! transfer`: one request each through the [`Client`], its answer printed (text: the value or
//! a short line; json: the server's answer as one line).
//!
//! Only the shapes of the public API are used here; the server decides what succeeds.

use std::io::Read;

use actix_web::http::Method;
use serde_json::{json, Value};

use super::client::{encode, Client};
use super::output::{print_json, table, CliError, Output};
use super::{Consistency, MemberCommand};

/// Longest value read from stdin: far above any sensible `--max-value-bytes`; the server
/// refuses what is over its own limit.
pub const MAX_STDIN_BYTES: usize = 64 * 1024 * 1024;

/// A fresh `Idempotency-Key` for one write.
fn fresh_key() -> String {
    format!("cli-{}", uuid::Uuid::new_v4())
}

/// `kvstore get KEY [--consistency stale]`: the value and a newline (exit 1 if there is none).
pub async fn get(
    client: &Client,
    out: Output,
    key: &str,
    consistency: Consistency,
) -> Result<(), CliError> {
    let mut path = format!("/get?key={}", encode(key));
    if consistency == Consistency::Stale {
        path.push_str("&consistency=stale");
    }
    let answer = client
        .send(Method::GET, &path, None)
        .await?
        .json(out)
        .await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Text => {
            let value = answer
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| CliError::Failed(format!("the answer has no value: {answer}")))?;
            println!("{value}");
        }
    }
    Ok(())
}

/// `kvstore set KEY [VALUE|-]`: without VALUE, or with `-`, the value is stdin, byte for byte.
pub async fn set(
    client: &Client,
    out: Output,
    key: &str,
    value: Option<String>,
    idempotency_key: Option<String>,
) -> Result<(), CliError> {
    let value = match value {
        Some(v) if v != "-" => v,
        _ => read_stdin(std::io::stdin().lock(), MAX_STDIN_BYTES)?,
    };
    let body = json!({"key": key, "value": value});
    let id = idempotency_key.unwrap_or_else(fresh_key);
    let answer = client
        .send_write(Method::PUT, "/set", Some(&body), &id)
        .await?;
    let answer = answer.json(out).await.map_err(|e| match e {
        CliError::Usage(m) if m.contains("too large") => CliError::Usage(format!(
            "{m}; the value has {} bytes (the node's --max-value-bytes decides)",
            value.len()
        )),
        other => other,
    })?;
    print_answer(out, &answer, "stored");
    Ok(())
}

/// `kvstore delete KEY` (exit 1 if there was no such key).
pub async fn delete(
    client: &Client,
    out: Output,
    key: &str,
    idempotency_key: Option<String>,
) -> Result<(), CliError> {
    let path = format!("/delete?key={}", encode(key));
    let id = idempotency_key.unwrap_or_else(fresh_key);
    let answer = client
        .send_write(Method::DELETE, &path, None, &id)
        .await?
        .json(out)
        .await?;
    print_answer(out, &answer, "deleted");
    Ok(())
}

/// `kvstore member ...`.
pub async fn member(client: &Client, out: Output, cmd: MemberCommand) -> Result<(), CliError> {
    let answer = match &cmd {
        MemberCommand::List => client.send(Method::GET, "/cluster", None).await?,
        MemberCommand::Add { id, url, learner } => {
            let body = json!({"id": id, "url": url, "learner": learner});
            client
                .send(Method::POST, "/cluster/members", Some(&body))
                .await?
        }
        MemberCommand::Remove { id } => {
            let path = format!("/cluster/members/{}", encode(id));
            client.send(Method::DELETE, &path, None).await?
        }
        MemberCommand::Promote { id } => {
            let path = format!("/cluster/members/{}/promote", encode(id));
            client.send(Method::POST, &path, None).await?
        }
    }
    .json(out)
    .await?;
    if out == Output::Json {
        print_json(&answer);
        return Ok(());
    }
    match cmd {
        MemberCommand::List => print!("{}", members_table(&answer)),
        _ => {
            let message = str_of(&answer, "message").unwrap_or("done");
            let id = str_of(&answer, "id").unwrap_or("?");
            match str_of(&answer, "role") {
                Some(role) => println!("{message}: {id} ({role})"),
                None => println!("{message}: {id}"),
            }
        }
    }
    Ok(())
}

/// `kvstore leader transfer [ID]`: answered once another node leads.
pub async fn transfer(client: &Client, out: Output, id: Option<String>) -> Result<(), CliError> {
    let body = match &id {
        Some(id) => json!({ "id": id }),
        None => json!({}),
    };
    let answer = client
        .send(Method::POST, "/cluster/leader", Some(&body))
        .await?
        .json(out)
        .await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Text => println!(
            "{}: {} leads",
            str_of(&answer, "message").unwrap_or("leadership transferred"),
            str_of(&answer, "leaderId").unwrap_or("?")
        ),
    }
    Ok(())
}

fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn print_answer(out: Output, answer: &Value, default: &str) {
    match out {
        Output::Json => print_json(answer),
        Output::Text => println!("{}", str_of(answer, "message").unwrap_or(default)),
    }
}

/// `GET /cluster`'s members as a table (progress columns when the answer came from the leader).
pub fn members_table(cluster: &Value) -> String {
    let leader = str_of(cluster, "leaderId");
    let members = cluster
        .get("members")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let num = |m: &Value, f: &str| {
        m.get(f)
            .and_then(Value::as_u64)
            .map_or("-".to_owned(), |n| n.to_string())
    };
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            let id = str_of(m, "id").unwrap_or("?");
            vec![
                id.to_owned(),
                str_of(m, "url").unwrap_or("?").to_owned(),
                str_of(m, "role").unwrap_or("?").to_owned(),
                if Some(id) == leader { "yes" } else { "" }.to_owned(),
                num(m, "matchIndex"),
                num(m, "lag"),
            ]
        })
        .collect();
    table(&["ID", "URL", "ROLE", "LEADER", "MATCH", "LAG"], &rows)
}

/// All of `input` as UTF-8, refused (exit 2) over `limit` bytes or when it is not UTF-8.
pub fn read_stdin(input: impl Read, limit: usize) -> Result<String, CliError> {
    let mut buf = Vec::new();
    input
        .take(limit as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::Usage(format!("cannot read the value from stdin: {e}")))?;
    if buf.len() > limit {
        return Err(CliError::Usage(format!(
            "the value on stdin is over {limit} bytes"
        )));
    }
    String::from_utf8(buf)
        .map_err(|e| CliError::Usage(format!("the value on stdin is not UTF-8: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_is_read_exactly_and_bounded() {
        assert_eq!(read_stdin(&b"a b\n"[..], 10).unwrap(), "a b\n");
        assert_eq!(read_stdin(&b"0123456789"[..], 10).unwrap(), "0123456789");
        assert_eq!(read_stdin(&b"0123456789x"[..], 10).unwrap_err().code(), 2);
        assert_eq!(read_stdin(&[0xff, 0xfe][..], 10).unwrap_err().code(), 2);
    }

    #[test]
    fn the_members_table_marks_the_leader_and_shows_progress_when_known() {
        let cluster: Value = serde_json::from_str(
            r#"{"ok":true,"leaderId":"n1","members":[
              {"id":"n1","url":"http://a:1","role":"voter","matchIndex":40,"lag":0},
              {"id":"n4","url":"http://d:4","role":"learner"}]}"#,
        )
        .unwrap();
        let t = members_table(&cluster);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "ID  URL         ROLE     LEADER  MATCH  LAG");
        assert_eq!(lines[1], "n1  http://a:1  voter    yes     40     0");
        assert_eq!(lines[2], "n4  http://d:4  learner          -      -");
    }
}
