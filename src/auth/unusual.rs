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
use crate::config::Config;
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
            network: network_of(client),
            // An address the database does not place is a place of its own
            // ("unplaced"), not no place: it must not let a sign-in through.
            country: geoip.map(|g| {
                let client = match client {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
                    v4 => v4,
                };
                g.country_of(client).unwrap_or_else(|| "unplaced".to_owned())
            }),
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

/// What the gate makes of a password sign-in.
pub enum Gate {
    /// It goes on; what it came from, to remember (`None`: the rule is off).
    Usual(Option<Signals>),
    /// It is confirmed with an e-mailed code first.
    Unusual(Signals),
}

impl Services {
    /// The gate every password sign-in passes before its session (the app's
    /// form, the gateway's page, HTTP Basic): whether it looks unusual under
    /// `second_factor.unusual_sign_in`. An unusual one whose user has no address
    /// to send a code to goes on (logged).
    pub async fn sign_in_gate(
        &self,
        config: &Config,
        user: &str,
        browser_cookie: Option<&str>,
        client: IpAddr,
        now: SystemTime,
    ) -> StoreResult<Gate> {
        let Some(rule) = config.second_factor.unusual_sign_in.as_ref() else {
            return Ok(Gate::Usual(None));
        };
        let signals = Signals::of(browser_cookie, client, rule.country.as_ref());
        if !self.is_unusual(rule, user, &signals, now).await? {
            return Ok(Gate::Usual(Some(signals)));
        }
        if self.email_address(config, user).await.is_none() {
            tracing::warn!(user = %user, "an unusual sign-in, and no e-mail address to confirm it with; it passes");
            return Ok(Gate::Usual(Some(signals)));
        }
        Ok(Gate::Unusual(signals))
    }

    /// Whether a first enrolment from `client` comes from a place not seen with
    /// `user`: then it is confirmed by e-mail first. The network always counts
    /// here, whatever `signals` names (so that a rule of the browser alone still
    /// guards enrolments), and the country where it is named; the browser does
    /// not (enrolments begin from many pages, some without its cookie).
    pub async fn enrolment_gate(
        &self,
        config: &Config,
        user: &str,
        client: IpAddr,
        now: SystemTime,
    ) -> StoreResult<Option<Signals>> {
        let Some(rule) = config.second_factor.unusual_sign_in.as_ref() else {
            return Ok(None);
        };
        let place = UnusualSignIn {
            browser: false,
            network: true,
            ..rule.clone()
        };
        let signals = Signals::of(None, client, rule.country.as_ref());
        if !self.is_unusual(&place, user, &signals, now).await?
            || self.email_address(config, user).await.is_none()
        {
            // A usual place (or the first on record) is what later sign-ins
            // are compared with.
            self.remember_place(user, &signals, now).await?;
            return Ok(None);
        }
        Ok(Some(signals))
    }

    /// Remembers where a sign-in came from (its network and country), not its
    /// browser.
    async fn remember_place(&self, user: &str, signals: &Signals, now: SystemTime) -> StoreResult<()> {
        self.store
            .note_signal(user, NETWORK, hash(NETWORK, &signals.network), now)
            .await?;
        if let Some(country) = &signals.country {
            self.store
                .note_signal(user, COUNTRY, hash(COUNTRY, country), now)
                .await?;
        }
        Ok(())
    }

    /// Remembers a sign-in that went on; the `Set-Cookie` naming its browser.
    pub async fn remember_sign_in(
        &self,
        config: &Config,
        user: &str,
        signals: Option<&Signals>,
        secure: bool,
        now: SystemTime,
    ) -> StoreResult<Option<String>> {
        let (Some(signals), Some(rule)) = (signals, config.second_factor.unusual_sign_in.as_ref()) else {
            return Ok(None);
        };
        self.remember_signals(user, signals, now).await?;
        // What has not been seen within `remember` is no longer known: its rows go.
        if let Some(before) = now.checked_sub(rule.remember) {
            self.store.forget_signals(user, before).await?;
        }
        Ok(Some(super::cookies::set_browser(
            &signals.browser_id,
            secure,
            rule.remember,
        )))
    }

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
        self.remember_place(user, signals, now).await?;
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
        assert!(fresh.browser_id.len() >= 43, "a new id of 256 random bits");
        let kept = Signals::of(
            Some("a-browser-id-of-some-length"),
            "192.0.2.1".parse().unwrap(),
            None,
        );
        assert_eq!(kept.browser_id, "a-browser-id-of-some-length");
        let odd = Signals::of(Some("short"), "192.0.2.1".parse().unwrap(), None);
        assert!(
            odd.browser_id != "short" && odd.browser_id.len() >= 43,
            "an odd id is replaced"
        );
    }
}
