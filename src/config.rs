//! Every tunable, read from Spin variables (declared in `spin.toml`) with
//! defaults. Each variable is read only when a request first needs it, and
//! at most once per request: Spin resolves every read through its provider
//! chain, which costs about as much as a whole small request
//! (`shared/SPIN-NOTES.md`). A value that does not parse is a configuration
//! error: every request that needs it is refused (fails closed). So is a
//! variable that cannot be read (a provider failing, say): only a variable
//! that is undefined or empty takes its default, never one whose value is
//! unknown.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::fmt;

/// Where variable values come from: Spin variables in the component, a map in tests.
pub trait Variables {
    /// The value; `None` when unset or empty; an error (see
    /// [`ConfigError::unreadable`]) when it could not be read, which refuses
    /// whatever needs the variable rather than apply its default.
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError>;
}

impl Variables for HashMap<String, String> {
    fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
        Ok(HashMap::get(self, name).filter(|v| !v.is_empty()).cloned())
    }
}

/// A secret value that never prints itself.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatePolicy {
    pub limit: u32,
    pub window_secs: u64,
}

/// Lifetimes of a session (a family of rotated refresh tokens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// How long one refresh token lives.
    pub refresh_secs: u64,
    /// How long a session lives from its login, however often it is refreshed.
    pub session_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub threshold: u32,
    pub lock_secs: u64,
}

/// A variable that does not parse, or could not be read. Its message names
/// the variable, never its value.
#[derive(Clone, Debug)]
pub struct ConfigError(pub String);

impl ConfigError {
    /// `name` could not be read: `why` is the provider's account of it (a
    /// read that failed has no value to leak).
    pub fn unreadable(name: &str, why: &str) -> Self {
        ConfigError(format!(
            "variable {name} could not be read ({why}); refusing what needs it"
        ))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every variable the service reads. Each must be declared in `spin.toml`
/// and mapped into the component, or Spin answers "undefined" and the
/// default would silently apply (a test checks the manifest).
pub const VARIABLES: [&str; 16] = [
    "jwt_secret",
    "admin_bootstrap_token",
    "bcrypt_cost",
    "token_ttl_seconds",
    "refresh_token_ttl_seconds",
    "session_ttl_seconds",
    "login_rate_limit",
    "login_rate_window_seconds",
    "register_rate_limit",
    "register_rate_window_seconds",
    "lockout_threshold",
    "lockout_duration_seconds",
    "client_ip_header",
    "mfa_encryption_key",
    "mfa_rate_limit",
    "mfa_rate_window_seconds",
];

pub const MIN_JWT_SECRET_BYTES: usize = 32;
pub const MIN_BOOTSTRAP_TOKEN_BYTES: usize = 16;
pub const MIN_MFA_KEY_BYTES: usize = 32;

/// How long one bcrypt check takes at cost 10 under Spin 4.0.2 on a 2-core
/// machine (measured: 64 ms; 225 ms at cost 12, 1.75 s at cost 15). Each
/// step of the cost doubles it.
const CHECK_MS_AT_COST_10: u64 = 64;

/// Safety factor over one check: the threshold's parallel checks share the
/// cores (5 on 2 cores take 2.5 times as long), a slower or busier host,
/// and the login's own store calls.
const LOGIN_MARGIN: u64 = 8;

/// The shortest lock a login at `bcrypt_cost` cannot outlast, in seconds.
/// A shorter one would end while the checks that caused it still run, so
/// their attempts would overlap the next period's (issue 7, finding 3).
pub fn min_lockout_secs(bcrypt_cost: u32) -> u64 {
    let check_ms = if bcrypt_cost >= 10 {
        CHECK_MS_AT_COST_10 << (bcrypt_cost - 10)
    } else {
        CHECK_MS_AT_COST_10 >> (10 - bcrypt_cost)
    };
    (check_ms * LOGIN_MARGIN).div_ceil(1000).max(1)
}

type Setting<T> = OnceCell<Result<T, ConfigError>>;

/// The configuration as one request sees it: each setting is read and
/// parsed on first use, then kept for the rest of the request.
pub struct Config<'v> {
    vars: &'v dyn Variables,
    bcrypt_cost: Setting<u32>,
    token_ttl_secs: Setting<u64>,
    sessions: Setting<SessionPolicy>,
    login_rate: Setting<RatePolicy>,
    register_rate: Setting<RatePolicy>,
    mfa_rate: Setting<RatePolicy>,
    lockout: Setting<LockoutPolicy>,
    client_ip_header: Setting<Option<http::HeaderName>>,
    jwt_secret: Setting<Option<Secret>>,
    admin_bootstrap_token: Setting<Option<Secret>>,
    mfa_encryption_key: Setting<Option<Secret>>,
}

impl<'v> Config<'v> {
    pub fn new(vars: &'v dyn Variables) -> Self {
        Self {
            vars,
            bcrypt_cost: OnceCell::new(),
            token_ttl_secs: OnceCell::new(),
            sessions: OnceCell::new(),
            login_rate: OnceCell::new(),
            register_rate: OnceCell::new(),
            mfa_rate: OnceCell::new(),
            lockout: OnceCell::new(),
            client_ip_header: OnceCell::new(),
            jwt_secret: OnceCell::new(),
            admin_bootstrap_token: OnceCell::new(),
            mfa_encryption_key: OnceCell::new(),
        }
    }

    /// Reads and checks every variable (the first error wins): for tests and
    /// tools that want the whole configuration's verdict at once.
    pub fn check_all(&self) -> Result<(), ConfigError> {
        self.bcrypt_cost()?;
        self.token_ttl_secs()?;
        self.sessions()?;
        self.login_rate()?;
        self.register_rate()?;
        self.mfa_rate()?;
        self.lockout()?;
        self.client_ip_header()?;
        self.jwt_secret()?;
        self.admin_bootstrap_token()?;
        self.mfa_encryption_key()?;
        Ok(())
    }

    pub fn bcrypt_cost(&self) -> Result<u32, ConfigError> {
        get(&self.bcrypt_cost, || {
            Ok(number(self.vars, "bcrypt_cost", 10, 4, 30)? as u32)
        })
    }

    pub fn token_ttl_secs(&self) -> Result<u64, ConfigError> {
        get(&self.token_ttl_secs, || {
            number(self.vars, "token_ttl_seconds", 900, 60, 86_400)
        })
    }

    pub fn sessions(&self) -> Result<SessionPolicy, ConfigError> {
        get(&self.sessions, || {
            Ok(SessionPolicy {
                refresh_secs: number(
                    self.vars,
                    "refresh_token_ttl_seconds",
                    604_800,
                    60,
                    31_536_000,
                )?,
                session_secs: number(self.vars, "session_ttl_seconds", 2_592_000, 60, 31_536_000)?,
            })
        })
    }

    pub fn login_rate(&self) -> Result<RatePolicy, ConfigError> {
        get(&self.login_rate, || {
            Ok(RatePolicy {
                limit: number(self.vars, "login_rate_limit", 5, 1, 1000)? as u32,
                window_secs: number(self.vars, "login_rate_window_seconds", 60, 1, 86_400)?,
            })
        })
    }

    pub fn register_rate(&self) -> Result<RatePolicy, ConfigError> {
        get(&self.register_rate, || {
            Ok(RatePolicy {
                limit: number(self.vars, "register_rate_limit", 10, 1, 1000)? as u32,
                window_secs: number(self.vars, "register_rate_window_seconds", 60, 1, 86_400)?,
            })
        })
    }

    /// The per-IP limit on two-factor verifications (`POST /auth/mfa/verify`).
    pub fn mfa_rate(&self) -> Result<RatePolicy, ConfigError> {
        get(&self.mfa_rate, || {
            Ok(RatePolicy {
                limit: number(self.vars, "mfa_rate_limit", 5, 1, 1000)? as u32,
                window_secs: number(self.vars, "mfa_rate_window_seconds", 60, 1, 86_400)?,
            })
        })
    }

    /// The lockout policy; also reads `bcrypt_cost`, since a lock shorter
    /// than a login at that cost is refused.
    pub fn lockout(&self) -> Result<LockoutPolicy, ConfigError> {
        get(&self.lockout, || {
            let bcrypt_cost = self.bcrypt_cost()?;
            let lock_secs = number(self.vars, "lockout_duration_seconds", 900, 1, 604_800)?;
            let shortest_lock = min_lockout_secs(bcrypt_cost);
            if lock_secs < shortest_lock {
                return Err(ConfigError(format!(
                    "variable lockout_duration_seconds must be at least {shortest_lock} with \
                     bcrypt_cost {bcrypt_cost}: a login at that cost can outlast a shorter lock"
                )));
            }
            Ok(LockoutPolicy {
                threshold: number(self.vars, "lockout_threshold", 5, 1, 1000)? as u32,
                lock_secs,
            })
        })
    }

    /// A header holding the client IP set by a trusted proxy; `None` means
    /// Spin's own `spin-client-addr`.
    pub fn client_ip_header(&self) -> Result<Option<http::HeaderName>, ConfigError> {
        get(&self.client_ip_header, || {
            match self.vars.get("client_ip_header")? {
                None => Ok(None),
                Some(raw) => http::HeaderName::try_from(raw.trim())
                    .map(Some)
                    .map_err(|_| {
                        ConfigError("variable client_ip_header is not a valid header name".into())
                    }),
            }
        })
    }

    pub fn jwt_secret(&self) -> Result<Option<&Secret>, ConfigError> {
        get_ref(&self.jwt_secret, || {
            secret(self.vars, "jwt_secret", MIN_JWT_SECRET_BYTES)
        })
    }

    /// The key TOTP secrets are sealed under (see `security::mfa`).
    pub fn mfa_encryption_key(&self) -> Result<Option<&Secret>, ConfigError> {
        get_ref(&self.mfa_encryption_key, || {
            secret(self.vars, "mfa_encryption_key", MIN_MFA_KEY_BYTES)
        })
    }

    pub fn admin_bootstrap_token(&self) -> Result<Option<&Secret>, ConfigError> {
        get_ref(&self.admin_bootstrap_token, || {
            secret(
                self.vars,
                "admin_bootstrap_token",
                MIN_BOOTSTRAP_TOKEN_BYTES,
            )
        })
    }
}

fn get<T: Clone>(
    cell: &Setting<T>,
    read: impl FnOnce() -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    cell.get_or_init(read).clone()
}

fn get_ref<T>(
    cell: &Setting<Option<T>>,
    read: impl FnOnce() -> Result<Option<T>, ConfigError>,
) -> Result<Option<&T>, ConfigError> {
    match cell.get_or_init(read) {
        Ok(value) => Ok(value.as_ref()),
        Err(e) => Err(e.clone()),
    }
}

fn number(
    vars: &dyn Variables,
    name: &str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    match vars.get(name)? {
        None => Ok(default),
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "variable {name} must be a whole number from {min} to {max}"
            ))),
        },
    }
}

fn secret(vars: &dyn Variables, name: &str, min: usize) -> Result<Option<Secret>, ConfigError> {
    match vars.get(name)? {
        None => Ok(None),
        Some(v) if v.len() >= min => Ok(Some(Secret(v.into_bytes()))),
        Some(_) => Err(ConfigError(format!(
            "variable {name} is shorter than {min} bytes; refusing what needs it"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Reads every variable through a recorder, to check the list above.
    #[test]
    fn variables_lists_every_name_read() {
        struct Recorder(std::cell::RefCell<Vec<String>>);
        impl Variables for Recorder {
            fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
                self.0.borrow_mut().push(name.to_owned());
                Ok(None)
            }
        }
        let recorder = Recorder(Default::default());
        Config::new(&recorder).check_all().unwrap();
        let mut read = recorder.0.into_inner();
        read.sort();
        let mut listed = VARIABLES.map(String::from).to_vec();
        listed.sort();
        assert_eq!(read, listed);
    }

    #[test]
    fn defaults_match_the_contract() {
        let vars = vars(&[]);
        let c = Config::new(&vars);
        assert_eq!(c.bcrypt_cost().unwrap(), 10);
        assert_eq!(c.token_ttl_secs().unwrap(), 900);
        assert_eq!(
            c.sessions().unwrap(),
            SessionPolicy {
                refresh_secs: 7 * 86_400,
                session_secs: 30 * 86_400
            }
        );
        assert_eq!(
            c.login_rate().unwrap(),
            RatePolicy {
                limit: 5,
                window_secs: 60
            }
        );
        assert_eq!(
            c.register_rate().unwrap(),
            RatePolicy {
                limit: 10,
                window_secs: 60
            }
        );
        assert_eq!(
            c.lockout().unwrap(),
            LockoutPolicy {
                threshold: 5,
                lock_secs: 900
            }
        );
        assert!(c.jwt_secret().unwrap().is_none());
        assert!(c.admin_bootstrap_token().unwrap().is_none());
        assert!(c.mfa_encryption_key().unwrap().is_none());
        assert_eq!(
            c.mfa_rate().unwrap(),
            RatePolicy {
                limit: 5,
                window_secs: 60
            }
        );
        assert!(c.client_ip_header().unwrap().is_none());
    }

    #[test]
    fn unparseable_numbers_are_errors_naming_the_variable() {
        for (k, v) in [
            ("bcrypt_cost", "ten"),
            ("bcrypt_cost", "3"),
            ("login_rate_limit", "0"),
        ] {
            let err = Config::new(&vars(&[(k, v)])).check_all().unwrap_err();
            assert!(err.0.contains(k), "{err}");
        }
    }

    #[test]
    fn a_lock_shorter_than_a_login_is_refused() {
        assert_eq!(min_lockout_secs(4), 1);
        assert_eq!(min_lockout_secs(10), 1);
        assert_eq!(min_lockout_secs(12), 3);
        assert_eq!(min_lockout_secs(15), 17);
        let err = Config::new(&vars(&[
            ("bcrypt_cost", "15"),
            ("lockout_duration_seconds", "1"),
        ]))
        .lockout()
        .unwrap_err();
        assert!(err.0.contains("lockout_duration_seconds"), "{err}");
        assert!(err.0.contains("at least 17"), "{err}");
        let ok = Config::new(&vars(&[
            ("bcrypt_cost", "15"),
            ("lockout_duration_seconds", "17"),
        ]))
        .lockout()
        .unwrap();
        assert_eq!(ok.lock_secs, 17);
        // The defaults, and a one-second lock at the default cost, stay valid.
        let one_second = vars(&[("lockout_duration_seconds", "1")]);
        assert!(Config::new(&one_second).check_all().is_ok());
    }

    /// A read that fails is not an unset variable: its default never applies.
    #[test]
    fn an_unreadable_variable_is_an_error_not_its_default() {
        struct Failing;
        impl Variables for Failing {
            fn get(&self, name: &str) -> Result<Option<String>, ConfigError> {
                Err(ConfigError::unreadable(name, "provider error: down"))
            }
        }
        let c = Config::new(&Failing);
        for err in [
            c.client_ip_header().unwrap_err(),
            c.bcrypt_cost().unwrap_err(),
            c.jwt_secret().unwrap_err(),
        ] {
            assert!(err.0.contains("could not be read"), "{err}");
        }
        assert!(c
            .client_ip_header()
            .unwrap_err()
            .0
            .contains("client_ip_header"));
    }

    #[test]
    fn short_secrets_are_refused_without_echoing_them() {
        let short = vars(&[("jwt_secret", "tooshort-secret")]);
        let err = Config::new(&short).check_all().unwrap_err();
        assert!(err.0.contains("jwt_secret") && !err.0.contains("tooshort"));
        let long = vars(&[("jwt_secret", &"k".repeat(32))]);
        let ok = Config::new(&long);
        assert_eq!(
            format!("{:?}", ok.jwt_secret().unwrap()),
            "Some(Secret(***))"
        );
    }
}
