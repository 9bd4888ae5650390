//! Apache Kafka in and out (cargo feature `kafka`): records from a topic
//! read by a consumer group, and the publisher behind `floodwatch produce`
//! and the alert topic.
//!
//! ```text
//! produce ──(key: dst IP)──▶ topic IN (P partitions) ──▶ watch #1 ┐ one consumer
//!                                                   └──▶ watch #2 ┘ group
//!   each instance: per-partition feature state ─▶ engine ─▶ alerts ─▶ topic ALERTS
//!   offsets committed only after the alerts and scores before them are acknowledged
//! ```
//!
//! - [`record`]: the record formats (raw packets, JSON and CSV rows), keys and
//!   record ids.
//! - the consumer group's record source is `detect::kafka_source`, above the
//!   features it decodes records into.
//! - [`publish`]: [`Publisher`], a keyed producer that counts deliveries, and
//!   topic creation.

pub mod publish;
pub mod record;

pub use publish::{create_topic, Publisher};
pub use record::KeyBy;

/// librdkafka settings given by the user (`--kafka-option KEY=VALUE`),
/// applied after floodwatch's own so they can override them.
pub type Options = [(String, String)];

/// A client configuration for `brokers` with the user's `options`.
pub(crate) fn client_config(brokers: &str, options: &Options) -> rdkafka::ClientConfig {
    let mut c = rdkafka::ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in options {
        c.set(k, v);
    }
    c
}

/// Parses `KEY=VALUE` (a librdkafka setting).
pub fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
        _ => Err(format!("'{s}' should be KEY=VALUE (a librdkafka setting)")),
    }
}

pub(crate) fn kafka_err(context: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Kafka(format!("{context}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_key_value_pairs() {
        assert_eq!(
            parse_option("session.timeout.ms = 6000").unwrap(),
            ("session.timeout.ms".into(), "6000".into())
        );
        assert_eq!(parse_option("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert!(parse_option("novalue").is_err());
        assert!(parse_option("=x").is_err());
    }

    #[test]
    fn user_options_override_defaults() {
        let opts = vec![("bootstrap.servers".to_owned(), "h:1".to_owned())];
        let c = client_config("127.0.0.1:9092", &opts);
        assert_eq!(c.get("bootstrap.servers"), Some("h:1"));
        assert!(kafka_err("topic t", "down")
            .to_string()
            .contains("topic t: down"));
    }
}
