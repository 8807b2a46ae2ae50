//! Finding students who are not on the roster.
//!
//! The engine keeps one control socket (with the proctor key) that asks the
//! server for its live rooms (`get-public-rooms`, see "Listing live rooms" in
//! [`crate::signal::protocol`]) as often as off-air students are polled.
//! Every live code that no roster student has becomes an unknown student
//! (`?CODE`), watched like a roster student until it leaves. This module is
//! the pure bookkeeping of that ([`Unknowns`]) and the one request; the
//! socket's loop lives with the other engine tasks.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::signal::client::SignalClient;
use crate::signal::protocol::{GET_PUBLIC_ROOMS, PUBLIC_ROOM_IDENTIFIER, listed_codes};

/// An unknown student is stopped once its code is missing from this many
/// listings in a row (one missing listing may be a student reopening its
/// room; its own task notices a real departure at once anyway).
pub const ABSENT_LISTINGS: u8 = 2;

/// Why a listing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// The server answered with a refusal (its reason, worded by the server).
    Refused(String),
    /// No answer in time, or the socket failed.
    NoAnswer(String),
}

/// Ask the server for the codes of its live rooms.
pub async fn list_rooms(
    client: &SignalClient,
    wait: Duration,
) -> std::result::Result<Vec<String>, ListError> {
    let ack = client
        .emit_with_ack(GET_PUBLIC_ROOMS, vec![json!(PUBLIC_ROOM_IDENTIFIER)], wait)
        .await
        .map_err(|e| ListError::NoAnswer(e.to_string()))?;
    listed_codes(&ack).map_err(ListError::Refused)
}

/// What to do after a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Codes to start watching as unknown students.
    pub start: Vec<String>,
    /// Codes whose unknown students should stop (gone from the listings).
    pub stop: Vec<String>,
    /// Set when the cap turns publishers away and that number changed:
    /// how many are not watched.
    pub capped: Option<usize>,
}

/// The unknown students being watched, and for how many listings each has
/// been missing.
#[derive(Debug)]
pub struct Unknowns {
    cap: usize,
    watched: HashMap<String, u8>,
    /// Publishers turned away by the cap at the last listing.
    capped: usize,
}

impl Unknowns {
    /// Watch at most `cap` unknown students at once.
    pub fn new(cap: usize) -> Self {
        Unknowns {
            cap,
            watched: HashMap::new(),
            capped: 0,
        }
    }

    /// Codes watched as unknown students.
    pub fn is_watched(&self, code: &str) -> bool {
        self.watched.contains_key(code)
    }

    /// Forget a code (its student was stopped for another reason, e.g. the
    /// code was added to the roster).
    pub fn forget(&mut self, code: &str) {
        self.watched.remove(code);
    }

    /// A new listing: `is_roster` tells the codes roster students have.
    /// New codes start in listing order until the cap; codes missing from
    /// [`ABSENT_LISTINGS`] listings in a row stop.
    pub fn update(&mut self, listed: &[String], is_roster: impl Fn(&str) -> bool) -> Changes {
        let live: HashSet<&str> = listed.iter().map(String::as_str).collect();
        let mut changes = Changes::default();
        let mut gone: Vec<String> = Vec::new();
        for (code, absent) in self.watched.iter_mut() {
            if live.contains(code.as_str()) {
                *absent = 0;
            } else {
                *absent += 1;
                if *absent >= ABSENT_LISTINGS {
                    gone.push(code.clone());
                }
            }
        }
        gone.sort();
        for code in &gone {
            self.watched.remove(code);
        }
        changes.stop = gone;
        let mut turned_away = 0;
        let mut seen = HashSet::new();
        for code in listed {
            if !seen.insert(code.as_str()) || is_roster(code) || self.watched.contains_key(code) {
                continue;
            }
            if self.watched.len() >= self.cap {
                turned_away += 1;
                continue;
            }
            self.watched.insert(code.clone(), 0);
            changes.start.push(code.clone());
        }
        if turned_away != self.capped {
            self.capped = turned_away;
            if turned_away > 0 {
                changes.capped = Some(turned_away);
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn new_codes_start_and_roster_codes_do_not() {
        let mut u = Unknowns::new(10);
        let ch = u.update(&codes(&["a", "r1", "b", "a"]), |c| c == "r1");
        assert_eq!(ch.start, codes(&["a", "b"]));
        assert!(ch.stop.is_empty());
        assert!(u.is_watched("a") && !u.is_watched("r1"));
        // Seen again: nothing new.
        assert_eq!(u.update(&codes(&["a", "b"]), |_| false), Changes::default());
    }

    #[test]
    fn a_code_stops_after_missing_listings_in_a_row() {
        let mut u = Unknowns::new(10);
        u.update(&codes(&["a", "b"]), |_| false);
        assert!(u.update(&codes(&["b"]), |_| false).stop.is_empty());
        // Back in time: the count starts again.
        assert!(u.update(&codes(&["a", "b"]), |_| false).stop.is_empty());
        assert!(u.update(&codes(&["b"]), |_| false).stop.is_empty());
        let ch = u.update(&codes(&["b"]), |_| false);
        assert_eq!(ch.stop, codes(&["a"]));
        assert!(!u.is_watched("a"));
        // It may come back later as a new unknown student.
        assert_eq!(
            u.update(&codes(&["a", "b"]), |_| false).start,
            codes(&["a"])
        );
    }

    #[test]
    fn the_cap_turns_publishers_away_and_says_so_once() {
        let mut u = Unknowns::new(2);
        let ch = u.update(&codes(&["a", "b", "c", "d"]), |_| false);
        assert_eq!(ch.start, codes(&["a", "b"]));
        assert_eq!(ch.capped, Some(2));
        let ch = u.update(&codes(&["a", "b", "c", "d"]), |_| false);
        assert_eq!(ch, Changes::default());
        // One leaves: a place frees up for a waiting publisher.
        u.update(&codes(&["b", "c", "d"]), |_| false);
        let ch = u.update(&codes(&["b", "c", "d"]), |_| false);
        assert_eq!(ch.stop, codes(&["a"]));
        assert_eq!(ch.start, codes(&["c"]));
        assert_eq!(ch.capped, Some(1));
        // Nobody turned away any more: no new report.
        let ch = u.update(&codes(&["b", "c"]), |_| false);
        assert_eq!(ch.capped, None);
    }

    #[test]
    fn forgotten_codes_start_again() {
        let mut u = Unknowns::new(2);
        u.update(&codes(&["a"]), |_| false);
        u.forget("a");
        assert!(!u.is_watched("a"));
        assert!(u.update(&codes(&["a"]), |c| c == "a").start.is_empty());
    }
}
