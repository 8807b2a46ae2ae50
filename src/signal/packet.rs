//! Engine.IO v4 and Socket.IO v5 text framing, as socket.io-client 3.x and
//! socket.io 4.x put it on a WebSocket (protocol notes §6.1).
//!
//! One WebSocket text frame carries one Engine.IO packet: a type digit, then
//! the payload. Engine.IO `4` (message) carries one Socket.IO packet: a type
//! digit, an optional namespace (`/name,`), an optional ack id (digits), then
//! a JSON array. Binary attachments (Socket.IO types 5 and 6) are never used
//! by RTCMultiConnection; they are rejected with a clear error rather than
//! half-parsed.
//!
//! Pure functions, no I/O: the client and its tests share them.

use serde_json::Value;

/// An Engine.IO v4 packet (the transport layer under Socket.IO).
#[derive(Debug, Clone, PartialEq)]
pub enum EnginePacket {
    /// `0{json}`: the handshake the server sends first.
    Open(OpenInfo),
    /// `1`: the server closes the session.
    Close,
    /// `2`: heartbeat from the server (EIO4: the server pings, the client pongs).
    Ping,
    /// `3`: the answer to a ping.
    Pong,
    /// `4...`: a Socket.IO packet.
    Message(SocketPacket),
    /// `5`: transport upgrade (polling only; never expected on a direct WebSocket).
    Upgrade,
    /// `6`: no-op.
    Noop,
}

/// The open packet's payload: session id and heartbeat timing.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenInfo {
    /// Engine.IO session id.
    pub sid: String,
    /// The server pings this often (ms).
    pub ping_interval: u64,
    /// After a ping, the server waits this long for the pong (ms); the client
    /// uses interval + timeout as its own "server is gone" deadline.
    pub ping_timeout: u64,
    /// Largest packet the server accepts (bytes); absent on old servers.
    #[serde(default = "default_max_payload")]
    pub max_payload: usize,
}

fn default_max_payload() -> usize {
    1_000_000
}

/// A Socket.IO v5 packet.
#[derive(Debug, Clone, PartialEq)]
pub enum SocketPacket {
    /// `0[/ns,][{data}]`: the client asks to join a namespace, or the server
    /// confirms it with `{"sid": ...}`.
    Connect { ns: String, data: Option<Value> },
    /// `1[/ns,]`: leave the namespace (either side).
    Disconnect { ns: String },
    /// `2[/ns,][id][name, args...]`: an event, asking for an ack when `id` is set.
    Event {
        ns: String,
        id: Option<u64>,
        name: String,
        args: Vec<Value>,
    },
    /// `3[/ns,]id[args...]`: the answer to an event that carried `id`.
    Ack {
        ns: String,
        id: u64,
        args: Vec<Value>,
    },
    /// `4[/ns,]{data}`: the server refused the namespace connection.
    ConnectError { ns: String, data: Value },
}

/// Why a frame could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("unknown Engine.IO packet type {0:?}")]
    UnknownEngineType(char),
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownSocketType(char),
    #[error(
        "binary Socket.IO packets (attachments) are not supported; RTCMultiConnection never sends them"
    )]
    Binary,
    #[error("bad JSON in packet: {0}")]
    Json(String),
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

/// The default namespace, written as nothing on the wire.
pub const DEFAULT_NS: &str = "/";

/// Parse one Engine.IO text frame.
pub fn parse_engine(frame: &str) -> Result<EnginePacket, FrameError> {
    let mut chars = frame.chars();
    let kind = chars.next().ok_or(FrameError::Empty)?;
    let rest = chars.as_str();
    Ok(match kind {
        '0' => EnginePacket::Open(
            serde_json::from_str(rest).map_err(|e| FrameError::Json(e.to_string()))?,
        ),
        '1' => EnginePacket::Close,
        '2' => EnginePacket::Ping,
        '3' => EnginePacket::Pong,
        '4' => EnginePacket::Message(parse_socket(rest)?),
        '5' => EnginePacket::Upgrade,
        '6' => EnginePacket::Noop,
        other => return Err(FrameError::UnknownEngineType(other)),
    })
}

/// Parse the Socket.IO packet inside an Engine.IO message.
pub fn parse_socket(text: &str) -> Result<SocketPacket, FrameError> {
    let mut chars = text.chars();
    let kind = chars.next().ok_or(FrameError::Empty)?;
    let mut rest = chars.as_str();
    if matches!(kind, '5' | '6') {
        return Err(FrameError::Binary);
    }
    if !matches!(kind, '0'..='4') {
        return Err(FrameError::UnknownSocketType(kind));
    }
    // Namespace: "/name," (the default namespace is omitted).
    let mut ns = DEFAULT_NS.to_string();
    if rest.starts_with('/') {
        let end = rest.find(',').unwrap_or(rest.len());
        ns = rest[..end].to_string();
        rest = rest.get(end + 1..).unwrap_or("");
    }
    // Ack id: leading digits.
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let id = if digits > 0 {
        Some(
            rest[..digits]
                .parse::<u64>()
                .map_err(|_| FrameError::Malformed("ack id out of range"))?,
        )
    } else {
        None
    };
    rest = &rest[digits..];
    let json = |s: &str| -> Result<Value, FrameError> {
        serde_json::from_str(s).map_err(|e| FrameError::Json(e.to_string()))
    };
    Ok(match kind {
        '0' => SocketPacket::Connect {
            ns,
            data: if rest.is_empty() {
                None
            } else {
                Some(json(rest)?)
            },
        },
        '1' => SocketPacket::Disconnect { ns },
        '2' => {
            let Value::Array(mut items) = json(rest)? else {
                return Err(FrameError::Malformed("event payload is not an array"));
            };
            if items.is_empty() {
                return Err(FrameError::Malformed("event without a name"));
            }
            let Value::String(name) = items.remove(0) else {
                return Err(FrameError::Malformed("event name is not a string"));
            };
            SocketPacket::Event {
                ns,
                id,
                name,
                args: items,
            }
        }
        '3' => {
            let id = id.ok_or(FrameError::Malformed("ack without an id"))?;
            let Value::Array(args) = json(rest)? else {
                return Err(FrameError::Malformed("ack payload is not an array"));
            };
            SocketPacket::Ack { ns, id, args }
        }
        // '4'
        _ => SocketPacket::ConnectError {
            ns,
            data: if rest.is_empty() {
                Value::Null
            } else {
                json(rest)?
            },
        },
    })
}

/// Format an Engine.IO packet as one WebSocket text frame (client side: the
/// open packet is never sent by a client, but formatting it keeps tests and
/// fake servers symmetrical).
pub fn format_engine(packet: &EnginePacket) -> String {
    match packet {
        EnginePacket::Open(info) => format!(
            "0{}",
            serde_json::json!({
                "sid": info.sid,
                "upgrades": [],
                "pingInterval": info.ping_interval,
                "pingTimeout": info.ping_timeout,
                "maxPayload": info.max_payload,
            })
        ),
        EnginePacket::Close => "1".into(),
        EnginePacket::Ping => "2".into(),
        EnginePacket::Pong => "3".into(),
        EnginePacket::Message(p) => format!("4{}", format_socket(p)),
        EnginePacket::Upgrade => "5".into(),
        EnginePacket::Noop => "6".into(),
    }
}

/// Format a Socket.IO packet (without the Engine.IO `4` prefix).
pub fn format_socket(packet: &SocketPacket) -> String {
    fn ns_prefix(ns: &str) -> String {
        if ns == DEFAULT_NS || ns.is_empty() {
            String::new()
        } else {
            format!("{ns},")
        }
    }
    match packet {
        SocketPacket::Connect { ns, data } => {
            let mut s = format!("0{}", ns_prefix(ns));
            if let Some(d) = data {
                s.push_str(&d.to_string());
            }
            s
        }
        SocketPacket::Disconnect { ns } => format!("1{}", ns_prefix(ns)),
        SocketPacket::Event { ns, id, name, args } => {
            let mut items = Vec::with_capacity(args.len() + 1);
            items.push(Value::String(name.clone()));
            items.extend(args.iter().cloned());
            format!(
                "2{}{}{}",
                ns_prefix(ns),
                id.map(|i| i.to_string()).unwrap_or_default(),
                Value::Array(items)
            )
        }
        SocketPacket::Ack { ns, id, args } => {
            format!("3{}{}{}", ns_prefix(ns), id, Value::Array(args.clone()))
        }
        SocketPacket::ConnectError { ns, data } => format!("4{}{}", ns_prefix(ns), data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn msg(p: SocketPacket) -> EnginePacket {
        EnginePacket::Message(p)
    }

    #[test]
    fn engine_control_packets_round_trip() {
        for (text, packet) in [
            ("1", EnginePacket::Close),
            ("2", EnginePacket::Ping),
            ("3", EnginePacket::Pong),
            ("5", EnginePacket::Upgrade),
            ("6", EnginePacket::Noop),
        ] {
            assert_eq!(parse_engine(text), Ok(packet.clone()));
            assert_eq!(format_engine(&packet), text);
        }
    }

    #[test]
    fn open_packet_from_node_socket_io_parses() {
        let text = r#"0{"sid":"Zx9","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
        let EnginePacket::Open(info) = parse_engine(text).expect("parse") else {
            panic!("not an open packet");
        };
        assert_eq!(info.sid, "Zx9");
        assert_eq!(info.ping_interval, 25000);
        assert_eq!(info.ping_timeout, 20000);
        assert_eq!(info.max_payload, 1_000_000);
        // Formatting and parsing again gives the same info.
        assert_eq!(
            parse_engine(&format_engine(&EnginePacket::Open(info.clone()))),
            Ok(EnginePacket::Open(info))
        );
    }

    #[test]
    fn namespace_connect_and_its_ack() {
        assert_eq!(
            format_engine(&msg(SocketPacket::Connect {
                ns: "/".into(),
                data: None
            })),
            "40"
        );
        assert_eq!(
            parse_engine(r#"40{"sid":"abc"}"#),
            Ok(msg(SocketPacket::Connect {
                ns: "/".into(),
                data: Some(json!({"sid": "abc"}))
            }))
        );
        assert_eq!(
            parse_engine("41"),
            Ok(msg(SocketPacket::Disconnect { ns: "/".into() }))
        );
        assert_eq!(
            parse_engine(r#"44{"message":"nope"}"#),
            Ok(msg(SocketPacket::ConnectError {
                ns: "/".into(),
                data: json!({"message": "nope"})
            }))
        );
    }

    #[test]
    fn events_with_and_without_ack_id() {
        let plain = SocketPacket::Event {
            ns: "/".into(),
            id: None,
            name: "extra-data-updated".into(),
            args: vec![json!("stu1"), json!({"message": "hi"})],
        };
        let text = r#"42["extra-data-updated","stu1",{"message":"hi"}]"#;
        assert_eq!(format_engine(&msg(plain.clone())), text);
        assert_eq!(parse_engine(text), Ok(msg(plain)));

        let with_id = SocketPacket::Event {
            ns: "/".into(),
            id: Some(17),
            name: "open-room".into(),
            args: vec![json!({"sessionid": "room1"})],
        };
        let text = r#"4217["open-room",{"sessionid":"room1"}]"#;
        assert_eq!(format_engine(&msg(with_id.clone())), text);
        assert_eq!(parse_engine(text), Ok(msg(with_id)));
    }

    #[test]
    fn acks_carry_their_argument_list() {
        let ack = SocketPacket::Ack {
            ns: "/".into(),
            id: 0,
            args: vec![json!(false), json!("Room not available")],
        };
        assert_eq!(format_socket(&ack), r#"30[false,"Room not available"]"#);
        assert_eq!(
            parse_engine(r#"430[false,"Room not available"]"#),
            Ok(msg(ack))
        );
        assert_eq!(
            parse_engine("4312345[true]"),
            Ok(msg(SocketPacket::Ack {
                ns: "/".into(),
                id: 12345,
                args: vec![json!(true)]
            }))
        );
    }

    #[test]
    fn non_default_namespace_is_kept() {
        let p = SocketPacket::Event {
            ns: "/admin".into(),
            id: Some(3),
            name: "x".into(),
            args: vec![],
        };
        assert_eq!(format_socket(&p), r#"2/admin,3["x"]"#);
        assert_eq!(parse_socket(r#"2/admin,3["x"]"#), Ok(p));
    }

    #[test]
    fn binary_packets_are_rejected_cleanly() {
        assert_eq!(
            parse_engine(r#"451-["upload",{"_placeholder":true,"num":0}]"#),
            Err(FrameError::Binary)
        );
        assert_eq!(parse_engine("461-0[{}]"), Err(FrameError::Binary));
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert_eq!(parse_engine(""), Err(FrameError::Empty));
        assert_eq!(parse_engine("9"), Err(FrameError::UnknownEngineType('9')));
        assert_eq!(parse_engine("4"), Err(FrameError::Empty));
        assert_eq!(parse_engine("47"), Err(FrameError::UnknownSocketType('7')));
        assert!(matches!(parse_engine("42[oops"), Err(FrameError::Json(_))));
        assert!(matches!(
            parse_engine("42{}"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_engine("42[]"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_engine("42[1]"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_engine("43[true]"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(
            parse_engine("4299999999999999999999[\"x\"]"),
            Err(FrameError::Malformed(_))
        ));
        assert!(matches!(parse_engine("0{}"), Err(FrameError::Json(_))));
    }
}
