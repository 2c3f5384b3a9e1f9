//! Listeners (`listeners`, `advertised.listeners`), their security protocols
//! (`listener.security.protocol.map`) and the controller quorum (`controller.quorum.voters`),
//! parsed and checked as Kafka does.
//!
//! A listener is `NAME://host:port`: the name is upper-cased (Kafka's `ListenerName.normalised`),
//! the host is a name or an IP literal (IPv6 in brackets, `[::1]`, or bare), empty to bind every
//! interface, and the port is 0 (any free port) to 65535. The security protocol is the one the
//! map gives the name; only `PLAINTEXT` is supported so far.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ConfigError, InvalidValue};

/// A Kafka security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecurityProtocol {
    /// No authentication, no encryption.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Every protocol, in Kafka's order.
    pub const ALL: [SecurityProtocol; 4] = [
        SecurityProtocol::Plaintext,
        SecurityProtocol::Ssl,
        SecurityProtocol::SaslPlaintext,
        SecurityProtocol::SaslSsl,
    ];

    /// Kafka's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// The protocol with this name, in any case (Kafka's `SecurityProtocol.forName`).
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        let upper = name.to_ascii_uppercase();
        SecurityProtocol::ALL
            .into_iter()
            .find(|p| p.name() == upper)
    }

    /// Whether this broker can serve it yet (only `PLAINTEXT`).
    pub fn is_supported(self) -> bool {
        self == SecurityProtocol::Plaintext
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One listener: a named socket address and the protocol spoken on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Listener {
    /// The listener name, upper case (`PLAINTEXT`, `CONTROLLER`, `INTERNAL`, ...).
    pub name: String,
    /// Host name or IP literal, without brackets; empty means every interface.
    pub host: String,
    /// TCP port; 0 binds any free port.
    pub port: u16,
    /// The protocol, from `listener.security.protocol.map`.
    pub security_protocol: SecurityProtocol,
}

impl Listener {
    /// Whether the host is a wildcard (empty, `0.0.0.0` or `::`): binds every interface and is
    /// not an address a client can be given.
    pub fn is_wildcard(&self) -> bool {
        is_wildcard_host(&self.host)
    }

    /// The address to bind, as `host:port` (`[v6]:port` for IPv6, `0.0.0.0:port` for an empty
    /// host), ready for `ToSocketAddrs`.
    pub fn bind_address(&self) -> String {
        if self.host.is_empty() {
            format!("0.0.0.0:{}", self.port)
        } else if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

pub(crate) fn is_wildcard_host(host: &str) -> bool {
    host.is_empty()
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_unspecified())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_unspecified())
}

/// A member of the controller quorum, from `controller.quorum.voters` (`id@host:port`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumVoter {
    /// The voter's `node.id`.
    pub id: i32,
    /// Its controller listener's host (no brackets for IPv6).
    pub host: String,
    /// Its controller listener's port.
    pub port: u16,
}

/// A listener before its protocol is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// Kafka's listener host characters: `[0-9a-zA-Z\-%._:]`.
fn valid_host(host: &str) -> bool {
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '%' | '.' | '_' | ':'))
}

/// Splits `host:port`, `[v6]:port` or a bare `v6:port` (the port is after the last colon).
fn split_host_port(address: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "unclosed '[' around the host".to_string())?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| "expected ':' and a port after ']'".to_string())?;
        (host, port)
    } else {
        address
            .rsplit_once(':')
            .ok_or_else(|| "expected host:port".to_string())?
    };
    if !valid_host(host) {
        return Err(format!("invalid host `{host}`"));
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port `{port}`"));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port} is out of range (0 to 65535)"))?;
    Ok((host.to_string(), port))
}

/// Parses one `NAME://host:port` entry of `key`.
pub(crate) fn parse_endpoint(key: &str, entry: &str) -> Result<Endpoint, InvalidValue> {
    let invalid = |reason: String| {
        InvalidValue::new(
            key,
            entry,
            format!("Unable to parse {entry} to a broker endpoint: {reason}"),
        )
    };
    let (name, address) = entry
        .rsplit_once("://")
        .ok_or_else(|| invalid("expected NAME://host:port".to_string()))?;
    if name.is_empty() {
        return Err(invalid("the listener name is empty".to_string()));
    }
    let (host, port) = split_host_port(address).map_err(invalid)?;
    Ok(Endpoint {
        name: name.to_uppercase(),
        host,
        port,
    })
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`; Kafka's `Csv.parseCsvMap` split
/// at the last colon, later entries winning).
pub(crate) fn parse_protocol_map(
    key: &str,
    raw: &str,
) -> Result<BTreeMap<String, SecurityProtocol>, InvalidValue> {
    let mut map = BTreeMap::new();
    for entry in super::def::split_list(raw) {
        let (name, protocol) = entry.rsplit_once(':').ok_or_else(|| {
            InvalidValue::new(key, raw, format!("entry `{entry}` is not NAME:PROTOCOL"))
        })?;
        let (name, protocol) = (name.trim(), protocol.trim());
        if name.is_empty() {
            return Err(InvalidValue::new(
                key,
                raw,
                format!("entry `{entry}` has no listener name"),
            ));
        }
        let protocol = SecurityProtocol::from_name(protocol).ok_or_else(|| {
            InvalidValue::new(
                key,
                raw,
                format!("Invalid security protocol `{protocol}` defined in {key}"),
            )
        })?;
        map.insert(name.to_uppercase(), protocol);
    }
    Ok(map)
}

/// Parses a listener list and checks Kafka's rules: names unique, and (for `listeners`) ports
/// unique except port 0 and except one IPv4 and one IPv6 literal sharing a port.
pub(crate) fn parse_endpoints(
    key: &str,
    entries: &[String],
    require_distinct_ports: bool,
) -> Result<Vec<Endpoint>, InvalidValue> {
    let endpoints = entries
        .iter()
        .map(|entry| parse_endpoint(key, entry))
        .collect::<Result<Vec<_>, _>>()?;
    let raw = entries.join(",");
    for (i, endpoint) in endpoints.iter().enumerate() {
        if endpoints[..i].iter().any(|e| e.name == endpoint.name) {
            return Err(InvalidValue::new(
                key,
                &raw,
                format!(
                    "Each listener must have a different name; {} appears twice",
                    endpoint.name
                ),
            ));
        }
    }
    if require_distinct_ports {
        let mut by_port: BTreeMap<u16, Vec<&Endpoint>> = BTreeMap::new();
        for endpoint in endpoints.iter().filter(|e| e.port != 0) {
            by_port.entry(endpoint.port).or_default().push(endpoint);
        }
        for (port, group) in by_port.into_iter().filter(|(_, g)| g.len() > 1) {
            let is_v4 = |h: &str| h.parse::<Ipv4Addr>().is_ok();
            let is_v6 = |h: &str| h.parse::<Ipv6Addr>().is_ok();
            let (ip, other): (Vec<&Endpoint>, Vec<&Endpoint>) =
                group.iter().partition(|e| is_v4(&e.host) || is_v6(&e.host));
            let allowed = other.is_empty()
                && ip.len() == 2
                && ((is_v4(&ip[0].host) && is_v6(&ip[1].host))
                    || (is_v6(&ip[0].host) && is_v4(&ip[1].host)));
            if !allowed {
                return Err(InvalidValue::new(
                    key,
                    &raw,
                    format!(
                        "Each listener must have a different port unless exactly one listener \
                         has an IPv4 address and the other IPv6 address; port {port} is used twice"
                    ),
                ));
            }
        }
    }
    Ok(endpoints)
}

/// Attaches each endpoint's security protocol, refusing unmapped names and (for now) every
/// protocol but `PLAINTEXT`.
pub(crate) fn with_protocols(
    key: &str,
    endpoints: Vec<Endpoint>,
    map: &BTreeMap<String, SecurityProtocol>,
) -> Result<Vec<Listener>, ConfigError> {
    endpoints
        .into_iter()
        .map(|e| {
            let protocol = *map.get(&e.name).ok_or_else(|| {
                InvalidValue::new(
                    key,
                    format!("{}://{}:{}", e.name, e.host, e.port),
                    format!(
                        "No security protocol defined for listener {} in \
                         listener.security.protocol.map",
                        e.name
                    ),
                )
            })?;
            check_supported(key, &e.name, protocol)?;
            Ok(Listener {
                name: e.name,
                host: e.host,
                port: e.port,
                security_protocol: protocol,
            })
        })
        .collect()
}

pub(crate) fn check_supported(
    key: &str,
    name: &str,
    protocol: SecurityProtocol,
) -> Result<(), ConfigError> {
    if protocol.is_supported() {
        Ok(())
    } else {
        Err(ConfigError::Unsupported {
            key: key.to_string(),
            value: name.to_string(),
            reason: format!(
                "listener {name} uses security protocol {protocol}, which is not supported yet \
                 (only PLAINTEXT is)"
            ),
        })
    }
}

/// Parses `controller.quorum.voters` (`id@host:port,...`): ids unique, hosts routable.
pub(crate) fn parse_voters(
    key: &str,
    entries: &[String],
) -> Result<Vec<QuorumVoter>, InvalidValue> {
    let raw = entries.join(",");
    let mut voters: Vec<QuorumVoter> = Vec::with_capacity(entries.len());
    for entry in entries {
        let invalid = |reason: String| {
            InvalidValue::new(
                key,
                &raw,
                format!("{reason}; each entry should be in the form `{{id}}@{{host}}:{{port}}`"),
            )
        };
        let parts: Vec<&str> = entry.split('@').collect();
        let [id, address] = parts[..] else {
            return Err(invalid(format!("`{entry}` is not id@host:port")));
        };
        let id: i32 = super::def::java_trim(id)
            .parse()
            .map_err(|_| invalid(format!("Failed to parse voter ID as an integer from {id}")))?;
        let (host, port) = split_host_port(address)
            .map_err(|e| invalid(format!("Failed to parse host and port from {entry}: {e}")))?;
        if host.is_empty() {
            return Err(invalid(format!("no host in {entry}")));
        }
        if is_wildcard_host(&host) {
            return Err(invalid(format!("Host string ({host}) is not routeable")));
        }
        if voters.iter().any(|v| v.id == id) {
            return Err(invalid(format!("voter id {id} appears twice")));
        }
        voters.push(QuorumVoter { id, host, port });
    }
    Ok(voters)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn endpoints() {
        let e = parse_endpoint("listeners", "plaintext://myhost:9092").unwrap();
        assert_eq!(
            e,
            Endpoint {
                name: "PLAINTEXT".into(),
                host: "myhost".into(),
                port: 9092
            }
        );
        let e = parse_endpoint("listeners", "SSL://:9091").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("", 9091));
        let e = parse_endpoint("listeners", "CLIENT://[::1]:9092").unwrap();
        assert_eq!((e.name.as_str(), e.host.as_str()), ("CLIENT", "::1"));
        let e = parse_endpoint("listeners", "CLIENT://[fe80::1%eth0]:9092").unwrap();
        assert_eq!(e.host, "fe80::1%eth0");
        // Bare IPv6: the port follows the last colon, as Kafka's pattern reads it.
        let e = parse_endpoint("listeners", "X://::1:9092").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9092));
        let e = parse_endpoint("listeners", "X://0.0.0.0:0").unwrap();
        assert_eq!(e.port, 0);
        for bad in [
            "localhost:9092",
            "://host:1",
            "A://host",
            "A://host:",
            "A://host:-1",
            "A://host:65536",
            "A://host:+1",
            "A://[::1:9092",
            "A://[::1]9092",
            "A://ho st:1",
            "A://host/x:1",
        ] {
            let err = parse_endpoint("listeners", bad).unwrap_err();
            assert_eq!(err.key, "listeners");
            assert_eq!(err.value, bad);
        }
    }

    #[test]
    fn names_and_ports_unique() {
        let ok = parse_endpoints(
            "listeners",
            &list(&["A://:9092", "B://:9093", "C://:0", "D://:0"]),
            true,
        );
        assert_eq!(ok.map(|e| e.len()), Ok(4));
        let err =
            parse_endpoints("listeners", &list(&["A://:9092", "a://:9093"]), true).unwrap_err();
        assert!(err.reason.contains("different name"), "{err}");
        let err =
            parse_endpoints("listeners", &list(&["A://h1:9092", "B://h2:9092"]), true).unwrap_err();
        assert!(err.reason.contains("different port"), "{err}");
        // One IPv4 and one IPv6 literal may share a port...
        assert!(parse_endpoints(
            "listeners",
            &list(&["A://127.0.0.1:9092", "B://[::1]:9092"]),
            true
        )
        .is_ok());
        // ...but not two of the same family, nor with a third listener.
        assert!(parse_endpoints(
            "listeners",
            &list(&["A://127.0.0.1:9092", "B://10.0.0.1:9092"]),
            true
        )
        .is_err());
        assert!(parse_endpoints(
            "listeners",
            &list(&["A://127.0.0.1:9092", "B://[::1]:9092", "C://:9092"]),
            true
        )
        .is_err());
        // advertised.listeners may repeat ports.
        assert!(parse_endpoints(
            "advertised.listeners",
            &list(&["A://h:1", "B://h:1"]),
            false
        )
        .is_ok());
    }

    #[test]
    fn protocol_map() {
        let map = parse_protocol_map("m", "internal:plaintext, EXTERNAL : SSL").unwrap();
        assert_eq!(map.get("INTERNAL"), Some(&SecurityProtocol::Plaintext));
        assert_eq!(map.get("EXTERNAL"), Some(&SecurityProtocol::Ssl));
        assert!(parse_protocol_map("m", "A:TLS").is_err());
        assert!(parse_protocol_map("m", "A").is_err());
        assert!(parse_protocol_map("m", ":SSL").is_err());
        assert_eq!(parse_protocol_map("m", "").map(|m| m.len()), Ok(0));
    }

    #[test]
    fn protocols_attach_and_unsupported_ones_fail() {
        let map = parse_protocol_map("m", "A:PLAINTEXT,B:SASL_SSL").unwrap();
        let ok = with_protocols(
            "listeners",
            parse_endpoints("listeners", &list(&["A://:1"]), true).unwrap(),
            &map,
        )
        .unwrap();
        assert_eq!(ok[0].security_protocol, SecurityProtocol::Plaintext);
        let err = with_protocols(
            "listeners",
            parse_endpoints("listeners", &list(&["B://:1"]), true).unwrap(),
            &map,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not supported yet"), "{err}");
        let err = with_protocols(
            "listeners",
            parse_endpoints("listeners", &list(&["C://:1"]), true).unwrap(),
            &map,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("No security protocol defined"),
            "{err}"
        );
    }

    #[test]
    fn voters() {
        let v = parse_voters(
            "controller.quorum.voters",
            &list(&["1@a:9093", "2@[::1]:9093", "3@10.0.0.3:1"]),
        )
        .unwrap();
        assert_eq!(
            v[1],
            QuorumVoter {
                id: 2,
                host: "::1".into(),
                port: 9093
            }
        );
        for bad in [
            &["x@a:1"][..],
            &["1a:1"],
            &["1@a@b:1"],
            &["1@a"],
            &["1@:1"],
            &["1@0.0.0.0:1"],
            &["1@a:1", "1@b:2"],
        ] {
            assert!(
                parse_voters("controller.quorum.voters", &list(bad)).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bind_addresses() {
        let mut l = Listener {
            name: "A".into(),
            host: String::new(),
            port: 9092,
            security_protocol: SecurityProtocol::Plaintext,
        };
        assert_eq!(l.bind_address(), "0.0.0.0:9092");
        assert!(l.is_wildcard());
        l.host = "::1".into();
        assert_eq!(l.bind_address(), "[::1]:9092");
        assert!(!l.is_wildcard());
        l.host = "::".into();
        assert!(l.is_wildcard());
    }
}
