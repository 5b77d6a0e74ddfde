//! Base URLs: parsing and normalising `PEERS` and advertised URLs, the defaults, and the
//! loopback tests the peer trust rules use. String work only: nothing here resolves a name.

use super::ConfigError;

/// `http://host:port` (or `https://host:port`) from a base URL like `http://host:port/` (no
/// path or query; the port defaults to 80 or 443).
pub fn parse_base_url(raw: &str) -> Result<String, String> {
    let uri: awc::http::Uri = raw.parse().map_err(|e| format!("{e}"))?;
    let (scheme, default_port) = match uri.scheme_str() {
        Some("http") => ("http", 80),
        Some("https") => ("https", 443),
        Some(other) => {
            return Err(format!(
                "scheme {other:?} is not supported (use http:// or https://)"
            ))
        }
        None => return Err("missing scheme (use http://host:port)".into()),
    };
    let authority = uri.authority().ok_or("missing host")?;
    if authority.host().is_empty() {
        return Err("missing host".into());
    }
    if authority.as_str().contains('@') {
        return Err("user info is not supported".into());
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must be a base URL without a path or query".into());
    }
    let port = authority.port_u16().unwrap_or(default_port);
    let url = format!("{scheme}://{}:{port}", authority.host());
    // Members' URLs travel in configuration entries and snapshots, which refuse longer ones.
    let max = crate::raft::rpc::MAX_URL_BYTES;
    if url.len() > max {
        return Err(format!("longer than {max} bytes"));
    }
    Ok(url)
}

/// PEERS: comma-separated base URLs, each optionally named `id=url`. Returns the normalized
/// URLs, in order, and the (url, id) pairs of the named ones.
pub(super) fn parse_peers(raw: &str) -> Result<PeerList, ConfigError> {
    let mut peers: Vec<String> = Vec::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // An `=` before any `://` separates an id; a URL itself may hold `=` only later.
        let (id, raw_url) = match item.split_once('=') {
            Some((id, rest)) if !id.contains("://") => (Some(id.trim()), rest.trim()),
            _ => (None, item),
        };
        let url = parse_base_url(raw_url).map_err(|why| {
            ConfigError::Invalid(format!("invalid peer URL {raw_url:?} in PEERS: {why}"))
        })?;
        if peers.contains(&url) {
            return Err(ConfigError::Invalid(format!("PEERS lists {url} twice")));
        }
        if let Some(id) = id {
            if id.is_empty()
                || id.len() > super::MAX_NODE_ID_BYTES
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::Invalid(format!(
                    "invalid node id {id:?} in PEERS entry {item:?}: must be non-empty, at most \
                     {} bytes, with no spaces",
                    super::MAX_NODE_ID_BYTES
                )));
            }
            if let Some((other, _)) = ids.iter().find(|(_, i)| i == id) {
                return Err(ConfigError::Invalid(format!(
                    "PEERS names two nodes {id:?} ({other} and {url})"
                )));
            }
            ids.push((url.clone(), id.to_owned()));
        }
        peers.push(url);
    }
    Ok((peers, ids))
}

/// What [`parse_peers`] gives: the URLs, and the (url, id) pairs of `id=url` entries.
pub(super) type PeerList = (Vec<String>, Vec<(String, String)>);

/// This node's URL when none is given: `http://localhost:PORT` when listening on every
/// interface, else `http://HOST:PORT`.
pub fn default_advertise_url(host: &str, port: u16) -> String {
    default_url(false, host, port)
}

/// [`default_advertise_url`], with `https://` when `https`.
pub fn default_url(https: bool, host: &str, port: u16) -> String {
    let scheme = if https { "https" } else { "http" };
    match host {
        "0.0.0.0" | "::" | "[::]" => format!("{scheme}://localhost:{port}"),
        h if h.contains(':') && !h.starts_with('[') => format!("{scheme}://[{h}]:{port}"),
        h => format!("{scheme}://{h}:{port}"),
    }
}

/// Is the host of base URL `url` a loopback name or address (`localhost`, 127.0.0.0/8, ::1)?
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<awc::http::Uri>()
        .ok()
        .and_then(|u| u.host().map(str::to_owned))
        .is_some_and(|h| h != "0.0.0.0" && is_loopback_name(&h))
}

/// `localhost`, a loopback address (127.0.0.0/8, ::1, ::ffff:127.x; brackets allowed), or
/// `0.0.0.0` (every interface, which includes loopback). A name is never resolved: only the
/// literal `localhost` counts (so `127.0.0.1.example.com` does not).
pub(super) fn is_loopback_name(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") || host == "0.0.0.0" {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Does peer URL `peer` point at this node (advertised as `me`, bound to `host:port`)?
pub(super) fn is_self(peer: &str, me: &str, host: &str, port: u16) -> bool {
    if peer == me {
        return true;
    }
    let Ok(uri) = peer.parse::<awc::http::Uri>() else {
        return false;
    };
    let (Some(h), Some(p)) = (uri.host(), uri.port_u16()) else {
        return false;
    };
    let bound_locally = matches!(host, "0.0.0.0" | "::" | "[::]") || is_loopback_name(host);
    p == port && bound_locally && is_loopback_name(h)
}

pub(super) fn parse_port(raw: &str, source: &str) -> Result<u16, ConfigError> {
    raw.trim().parse::<u16>().map_err(|_| {
        ConfigError::Invalid(format!(
            "invalid port {raw:?} from {source}: expected a number from 0 to 65535"
        ))
    })
}

pub(super) fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line")
        .trim()
        .to_owned()
}
