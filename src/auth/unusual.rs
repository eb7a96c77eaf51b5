//! Sign-ins that look unusual (`second_factor.unusual_sign_in`), where the app
//! asks no second factor of the user: from a browser, or a network, this user did
//! not sign in from within `remember` (or a country, by a GeoIP database). Such a sign-in is confirmed with a code
//! e-mailed to the user, as Zoom does for users without two-factor
//! authentication, before the app's session reaches the browser.
//!
//! The store keeps each signal's hash only. A user's first sign-in on record
//! sets the baseline: there is nothing yet to compare it with.

use std::net::IpAddr;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::challenge::random_token;
use super::services::Services;
use crate::config::model::{GeoIp, UnusualSignIn};
use crate::store::StoreResult;

const BROWSER: &str = "browser";
const NETWORK: &str = "network";
const COUNTRY: &str = "country";

/// What a sign-in came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signals {
    /// The id the browser's cookie holds: the one it sent, or a new one for a
    /// browser that sent none (a fresh browser is one not seen before).
    pub browser_id: String,
    /// Whether the browser sent that id (else it is new, and is set with the answer).
    pub browser_known_id: bool,
    /// The client's network: its IPv4 /24 or IPv6 /48.
    pub network: String,
    /// The client's country (ISO code), when a GeoIP database knows it.
    pub country: Option<String>,
}

impl Signals {
    pub fn of(browser_cookie: Option<&str>, client: IpAddr, geoip: Option<&GeoIp>) -> Signals {
        let sent = browser_cookie.filter(|id| (16..=64).contains(&id.len()));
        Signals {
            browser_id: sent.map_or_else(random_token, str::to_owned),
            browser_known_id: sent.is_some(),
            network: network_of(client),
            country: geoip.and_then(|g| g.country_of(client)),
        }
    }
}

/// The network a client is in, as far as a sign-in's place goes: an IPv4 /24, an
/// IPv6 /48 (an IPv4 address mapped into IPv6 is read as IPv4).
pub fn network_of(client: IpAddr) -> String {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    match client {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
    }
}

fn hash(kind: &str, value: &str) -> [u8; 32] {
    Sha256::digest(format!("portvakt {kind}\0{value}").as_bytes()).into()
}

impl Services {
    /// Whether this sign-in of `user` looks unusual under `rule`: a signal it
    /// names was not seen with this user within `rule.remember`. Never on the
    /// user's first sign-in on record.
    pub async fn is_unusual(
        &self,
        rule: &UnusualSignIn,
        user: &str,
        signals: &Signals,
        now: SystemTime,
    ) -> StoreResult<bool> {
        let since = now.checked_sub(rule.remember).unwrap_or(SystemTime::UNIX_EPOCH);
        // An address the database does not place is no country signal.
        let country = signals.country.as_deref().filter(|_| rule.country.is_some());
        let checks = [
            (rule.network, NETWORK, hash(NETWORK, &signals.network)),
            (rule.browser, BROWSER, hash(BROWSER, &signals.browser_id)),
            (
                country.is_some(),
                COUNTRY,
                hash(COUNTRY, country.unwrap_or_default()),
            ),
        ];
        for (_, kind, value) in checks.iter().filter(|(asked, _, _)| *asked) {
            match self.store.signal_seen(user, kind, *value, since).await? {
                None => return Ok(false),
                Some(false) => return Ok(true),
                Some(true) => {}
            }
        }
        Ok(false)
    }

    /// Remembers this sign-in's browser and network for `user` (whatever the
    /// rule names, so that turning a signal on later has a history to use).
    pub async fn remember_signals(&self, user: &str, signals: &Signals, now: SystemTime) -> StoreResult<()> {
        self.store
            .note_signal(user, NETWORK, hash(NETWORK, &signals.network), now)
            .await?;
        if let Some(country) = &signals.country {
            self.store
                .note_signal(user, COUNTRY, hash(COUNTRY, country), now)
                .await?;
        }
        self.store
            .note_signal(user, BROWSER, hash(BROWSER, &signals.browser_id), now)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_a_v4_24_or_a_v6_48() {
        let at = |s: &str| network_of(s.parse().unwrap());
        assert_eq!(at("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(at("192.0.2.1"), at("192.0.2.254"));
        assert_ne!(at("192.0.2.1"), at("192.0.3.1"));
        assert_eq!(at("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(at("::ffff:192.0.2.9"), "192.0.2.0/24", "mapped IPv4 is IPv4");
    }

    #[test]
    fn a_browser_without_an_id_gets_a_new_one_and_odd_ids_are_not_taken() {
        let fresh = Signals::of(None, "192.0.2.1".parse().unwrap(), None);
        assert!(!fresh.browser_known_id && fresh.browser_id.len() >= 43);
        let kept = Signals::of(
            Some("a-browser-id-of-some-length"),
            "192.0.2.1".parse().unwrap(),
            None,
        );
        assert!(kept.browser_known_id);
        assert_eq!(kept.browser_id, "a-browser-id-of-some-length");
        assert!(!Signals::of(Some("short"), "192.0.2.1".parse().unwrap(), None).browser_known_id);
    }
}
