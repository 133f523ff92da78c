//! The `Host` header: required on HTTP/1.1, and — on a loopback server without a token — one of
//! the machine's own names or a name the configuration allows (the DNS-rebinding guard).
//!
//! Without the guard, any web page can drive a server on 127.0.0.1: the page's own name is
//! pointed at 127.0.0.1 once the page has loaded (DNS rebinding), and the browser then sends the
//! page's requests, same-origin, to the local server, with the page's name in `Host`. A token
//! stops that (the page does not know it); without one, the name is the only tell.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::ServerConfig;
use crate::error::ApiError;

/// Refuses an HTTP/1.1 request that names no host (RFC 9112 §3.2 makes `Host` mandatory;
/// hyper lets it through). HTTP/2 carries the host in the request's URI instead.
pub(super) async fn require_host(request: Request, next: Next) -> Response {
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(header::HOST) {
        return ApiError::BadRequest("The request names no host: send a `Host` header".into())
            .into_response();
    }
    next.run(request).await
}

/// The host names a server answers to.
#[derive(Clone, Debug)]
pub(crate) struct HostPolicy {
    /// `None`: any name (a token guards the server, or it was opened to the network on
    /// purpose).
    guard: Option<Guard>,
}

///
/// A loopback name is accepted on any port: a `Host` of `localhost:N` means the browser itself
/// connected to the machine, which a rebinding page cannot make it do under a name of its own;
/// and clients behind a tunnel or a proxy on loopback (`ssh -L 9000:localhost:8080`) name the
/// port they connected to, not the server's.
#[derive(Clone, Debug)]
struct Guard {
    /// [`ServerConfig::allowed_hosts`], lowercase: `name` (any port) or `name:port`.
    allowed: Vec<String>,
}

impl HostPolicy {
    /// The policy of a server with `config` listening on `bound` (`None`: a router served by
    /// the caller, where the address is unknown). The guard is on without a token when the
    /// server listens on loopback — or, with the address unknown, unless `insecure_no_auth`
    /// opened it to the network.
    pub(crate) fn new(config: &ServerConfig, bound: Option<SocketAddr>) -> Self {
        let guarded = config.auth_token.is_none()
            && bound.map_or(!config.insecure_no_auth, |addr| addr.ip().is_loopback());
        HostPolicy {
            guard: guarded.then(|| Guard {
                allowed: config.allowed_hosts.clone(),
            }),
        }
    }

    /// Checks the host a request names (`Host`, or the URI's authority on HTTP/2).
    fn check(&self, host: &str) -> Result<(), ApiError> {
        let Some(guard) = &self.guard else {
            return Ok(());
        };
        let (name, port) = split_host(host).ok_or_else(|| {
            ApiError::BadRequest(format!("Invalid Host header: '{host}' is not a host name"))
        })?;
        let name = normalize(name);
        let loopback = name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        let allowed = guard.allowed.iter().any(|entry| {
            split_host(entry).is_some_and(|(allowed, allowed_port)| {
                normalize(allowed) == name && (allowed_port.is_none() || allowed_port == port)
            })
        });
        if loopback || allowed {
            return Ok(());
        }
        Err(ApiError::HostNotAllowed(format!(
            "Host '{host}' is not allowed: this server listens on loopback without a token, so \
             it answers only to localhost, 127.0.0.1 and [::1], which keeps web pages \
             from driving it through DNS rebinding. Reach it by one of those names, allow this \
             one (`ServerConfig::allowed_hosts`; `eventflow serve --allowed-host NAME`), or set \
             a token"
        )))
    }
}

/// A host name as compared: lowercase, without the trailing dot of a fully qualified name.
fn normalize(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.strip_suffix('.') {
        Some(name) => name.to_owned(),
        None => name,
    }
}

/// `name` and the port of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`); `None`
/// when it is not one.
pub(crate) fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let (name, port) = if host.starts_with('[') {
        let end = host.find(']')?;
        match &host[end + 1..] {
            "" => (&host[..=end], None),
            rest => (&host[..=end], Some(rest.strip_prefix(':')?)),
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let port = match port {
        Some(port) => Some(port.parse::<u16>().ok()?),
        None => None,
    };
    let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    let inner = name.strip_prefix('[').and_then(|v6| v6.strip_suffix(']'));
    let well_formed = match inner {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => !name.is_empty() && name.chars().all(valid),
    };
    well_formed.then_some((name, port))
}

/// Refuses a request whose host the policy does not allow.
pub(super) async fn guard_host(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = match request.headers().get(header::HOST) {
        Some(value) => match value.to_str() {
            Ok(host) => Some(host.to_owned()),
            Err(_) => {
                return ApiError::BadRequest(
                    "Invalid Host header: it is not visible ASCII".to_owned(),
                )
                .into_response();
            }
        },
        None => request
            .uri()
            .authority()
            .map(|authority| authority.to_string()),
    };
    // No host at all: HTTP/1.0, which no browser speaks (HTTP/1.1 without one is refused
    // before).
    if let Some(host) = host
        && let Err(refused) = policy.check(&host)
    {
        return refused.into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allowed: &[&str], bound: Option<SocketAddr>) -> HostPolicy {
        HostPolicy::new(
            &ServerConfig::default().allowed_hosts(allowed.iter().copied()),
            bound,
        )
    }

    fn allows(policy: &HostPolicy, host: &str) -> bool {
        policy.check(host).is_ok()
    }

    #[test]
    fn a_loopback_server_answers_to_its_loopback_names() {
        let policy = policy(&[], Some(([127, 0, 0, 1], 8080).into()));
        for host in [
            "localhost",
            "localhost:8080",
            "LocalHost.:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.1.2.3:8080",
            "[::1]",
            "[::1]:8080",
            // Through a tunnel or a proxy on another port.
            "localhost:9000",
        ] {
            assert!(allows(&policy, host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.evil.example",
            "0.0.0.0:8080",
            "192.168.1.2:8080",
            "[::2]:8080",
        ] {
            assert!(
                matches!(policy.check(host), Err(ApiError::HostNotAllowed(_))),
                "{host}"
            );
        }
        for host in [
            "a b",
            "",
            ":8080",
            "localhost:x",
            "::1",
            "[::1",
            "x@localhost",
            "[zz]",
        ] {
            assert!(
                matches!(policy.check(host), Err(ApiError::BadRequest(_))),
                "{host}"
            );
        }
    }

    #[test]
    fn allowed_names_match_any_port_or_theirs() {
        let policy = policy(
            &["App.Internal", "tunnel.example:9000", "[fd00::1]:9000"],
            Some(([127, 0, 0, 1], 8080).into()),
        );
        for host in [
            "app.internal",
            "app.internal:1",
            "tunnel.example:9000",
            "[fd00::1]:9000",
        ] {
            assert!(allows(&policy, host), "{host}");
        }
        for host in ["tunnel.example", "tunnel.example:9001", "[fd00::1]:9001"] {
            assert!(!allows(&policy, host), "{host}");
        }
    }

    #[test]
    fn a_token_or_an_address_beyond_loopback_turns_the_guard_off() {
        let with_token = HostPolicy::new(
            &ServerConfig::default().auth_token("t"),
            Some(([127, 0, 0, 1], 8080).into()),
        );
        assert!(allows(&with_token, "evil.example"));
        let exposed = HostPolicy::new(
            &ServerConfig::default().insecure_no_auth(true),
            Some(([0, 0, 0, 0], 8080).into()),
        );
        assert!(allows(&exposed, "server.lan:8080"));
        // A router served by its caller: on, unless the network was let in on purpose.
        let unknown = policy(&[], None);
        assert!(allows(&unknown, "localhost:1234"));
        assert!(!allows(&unknown, "evil.example"));
        let open = HostPolicy::new(&ServerConfig::default().insecure_no_auth(true), None);
        assert!(allows(&open, "evil.example"));
    }
}
