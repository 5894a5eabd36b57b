//! Properties: the domain parsers against their rules computed here
//! independently, and the login rate limit and the account lockout, driven
//! through the router, against small reference models of what
//! `src/security/rate_limit.rs` and `src/security/lockout.rs` document.
//!
//! Requests here run one after another on the in-memory store, with no store
//! faults, so both security rules are exact (their module docs: uncertainty
//! only arises from attempts in flight or lost writes). The models are
//! therefore compared for equality, answer by answer, which checks the
//! safety side (never more than allowed) and the liveness side (never
//! refused when the rule allows) at once; the safety side of the rate limit
//! is also checked on its own, straight from the contract.

mod common;

use common::*;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use secure_backend::clock::Clock;
use secure_backend::domain::{Password, Role, Username};

/// At most 64 cases each; no regression files (this suite writes nothing
/// outside `tests/properties.rs`: a failure prints its minimal case).
fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A fixed signing key: the slots client addresses are hashed into are then
/// the same on every run, so the addresses below are known to have a slot
/// each (checked in the rate-limit property). A generated key would let two
/// of them share a slot, and so a window, once in a few hundred runs.
const JWT_SECRET: &str = "properties-signing-key-0123456789abcdef";

// ---------------------------------------------------------------------------
// Username
// ---------------------------------------------------------------------------

/// The username rule, byte by byte (the parser works on characters).
fn username_rule(s: &str) -> bool {
    (3..=32).contains(&s.len())
        && s.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_uppercase()
                || b.is_ascii_digit()
                || b"_.-".contains(&b)
        })
}

fn allowed_in_username(c: char) -> bool {
    c.is_ascii() && username_rule(&c.to_string().repeat(3))
}

fn valid_username() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.-]{3,32}"
}

/// A character the rule forbids: the classic ones, characters whose
/// lowercase is ASCII (KELVIN SIGN -> 'k', 'İ' -> "i̇"), and any other.
fn forbidden_char() -> impl Strategy<Value = char> {
    prop_oneof![
        select(vec![
            '\0', '\n', '\r', '\t', ' ', '/', ':', '@', '+', '\'', '"', '\\', '\u{7f}', 'é', 'ß',
            'İ', '\u{212a}', '\u{200b}', '\u{ff41}', '😀',
        ]),
        any::<char>().prop_filter("forbidden", |c| !allowed_in_username(*c)),
    ]
}

/// Strings just outside the rule: a length off by a little, or one
/// forbidden character put in place of an allowed one or added.
fn near_miss_username() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_.-]{0,2}",
        "[A-Za-z0-9_.-]{33,40}",
        (valid_username(), any::<Index>(), forbidden_char()).prop_map(|(base, at, c)| {
            // The base is ASCII, so every byte index is a character boundary.
            let at = at.index(base.len());
            format!("{}{c}{}", &base[..at], &base[at + 1..])
        }),
        (valid_username(), any::<Index>(), forbidden_char()).prop_map(|(base, at, c)| {
            let at = at.index(base.len() + 1);
            format!("{}{c}{}", &base[..at], &base[at..])
        }),
    ]
}

fn any_username_input() -> impl Strategy<Value = String> {
    prop_oneof![
        valid_username(),
        near_miss_username(),
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_parsed_username_is_its_input_in_lowercase_and_parses_again(raw in valid_username()) {
        let name = Username::parse(&raw).expect("valid by construction");
        prop_assert!(username_rule(name.as_str()));
        prop_assert_eq!(name.as_str(), raw.to_lowercase());
        prop_assert!(!name.as_str().chars().any(|c| c.is_uppercase()));
        prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
        prop_assert_eq!(name.to_string(), name.as_str());
    }

    #[test]
    fn a_username_just_outside_the_rule_is_refused(raw in near_miss_username()) {
        prop_assert!(!username_rule(&raw), "the generator made a valid name: {:?}", raw);
        prop_assert_eq!(Username::parse(&raw), Err(Username::RULE));
    }

    #[test]
    fn a_username_parses_exactly_when_the_rule_holds(raw in any_username_input()) {
        match Username::parse(&raw) {
            Ok(name) => {
                prop_assert!(username_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(name.as_str(), raw.to_lowercase());
            }
            Err(_) => prop_assert!(!username_rule(&raw), "refused {:?}", raw),
        }
    }
}

// ---------------------------------------------------------------------------
// Password
// ---------------------------------------------------------------------------

/// Characters, counted as the bytes that start one (not UTF-8 continuation
/// bytes): independent of `chars()`, which the parser uses.
fn chars_in(s: &str) -> usize {
    s.bytes().filter(|b| b & 0b1100_0000 != 0b1000_0000).count()
}

/// Registration: at least 8 characters, at most 71 bytes.
fn registration_rule(s: &str) -> bool {
    chars_in(s) >= 8 && s.len() < 72
}

/// Login: anything non-empty bcrypt takes whole, at most 71 bytes.
fn login_rule(s: &str) -> bool {
    !s.is_empty() && s.len() < 72
}

/// A character of any UTF-8 width (1 to 4 bytes), control characters too.
fn any_width_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::char::range(' ', '~'),
        1 => prop::char::range('\u{80}', '\u{7ff}'),
        1 => prop::char::range('\u{800}', '\u{d7ff}'),
        1 => prop::char::range('\u{10000}', '\u{10ffff}'),
        1 => select(vec!['\0', '\n', '\t', ' ']),
    ]
}

/// Lengths on both sides of 8 characters and of 71 bytes, in every
/// combination: near 8 characters of any width, near 71 ASCII bytes, and
/// near 71 bytes ending in a character of any width.
fn password_input() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,75}",
        "[ -~]{69,73}",
        prop::collection::vec(any_width_char(), 5..=10).prop_map(String::from_iter),
        prop::collection::vec(any_width_char(), 0..=40).prop_map(String::from_iter),
        ("[ -~]{64,71}", any_width_char()).prop_map(|(head, last)| format!("{head}{last}")),
        any::<String>(),
    ]
}

/// `Debug` prints exactly this, whatever the password: checked as equality,
/// since "contains the password" is true of passwords such as "Password"
/// or "***" by coincidence.
const PASSWORD_DEBUG: &str = "Password(***)";

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_registration_password_is_accepted_exactly_when_the_rule_holds(raw in password_input()) {
        match Password::parse(raw.clone()) {
            Ok(password) => {
                prop_assert!(registration_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(password.expose(), raw.as_str());
                prop_assert_eq!(format!("{password:?}"), PASSWORD_DEBUG);
                prop_assert_eq!(format!("{password:#?}"), PASSWORD_DEBUG);
                let again = Password::parse(password.expose().to_owned());
                prop_assert_eq!(again.map(|p| p.expose().to_owned()), Ok(raw));
            }
            Err(rule) => {
                prop_assert!(!registration_rule(&raw), "refused {:?}", raw);
                prop_assert_eq!(rule, Password::RULE);
            }
        }
    }

    #[test]
    fn a_login_password_is_accepted_exactly_when_the_rule_holds(raw in password_input()) {
        match Password::parse_candidate(raw.clone()) {
            Ok(password) => {
                prop_assert!(login_rule(&raw), "accepted {:?}", raw);
                prop_assert_eq!(password.expose(), raw.as_str());
                prop_assert_eq!(format!("{password:?}"), PASSWORD_DEBUG);
                let again = Password::parse_candidate(password.expose().to_owned());
                prop_assert_eq!(again.map(|p| p.expose().to_owned()), Ok(raw.clone()));
            }
            Err(_) => prop_assert!(!login_rule(&raw), "refused {:?}", raw),
        }
        // What registration accepts, login accepts.
        if Password::parse(raw.clone()).is_ok() {
            prop_assert!(Password::parse_candidate(raw).is_ok());
        }
    }
}

// ---------------------------------------------------------------------------
// Role
// ---------------------------------------------------------------------------

/// "user" or "admin" with the case of some letters flipped, or with a
/// character added around it, or cut short.
fn role_variant() -> impl Strategy<Value = String> {
    let base = select(vec!["user", "admin"]);
    prop_oneof![
        (base.clone(), prop::collection::vec(any::<bool>(), 5)).prop_map(|(b, flips)| {
            b.chars()
                .zip(flips)
                .map(|(c, flip)| if flip { c.to_ascii_uppercase() } else { c })
                .collect()
        }),
        (
            base.clone(),
            select(vec![" ", "\n", "\0", "s", "\u{212a}"]),
            any::<bool>()
        )
            .prop_map(|(b, extra, before)| if before {
                format!("{extra}{b}")
            } else {
                format!("{b}{extra}")
            }),
        (base, any::<Index>()).prop_map(|(b, at)| b[..at.index(b.len())].to_owned()),
    ]
}

fn role_input() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("user".to_owned()),
        Just("admin".to_owned()),
        role_variant(),
        "[a-zA-Z]{0,6}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_role_is_exactly_user_or_admin(raw in role_input()) {
        match Role::parse(&raw) {
            Ok(role) => {
                prop_assert!(raw == "user" || raw == "admin", "accepted {:?}", raw);
                prop_assert_eq!(role.as_str(), raw.as_str());
                prop_assert_eq!(Role::parse(role.as_str()), Ok(role));
            }
            Err(rule) => {
                prop_assert!(raw != "user" && raw != "admin", "refused {:?}", raw);
                prop_assert_eq!(rule, Role::RULE);
            }
        }
    }

    #[test]
    fn any_other_spelling_of_a_role_is_refused(
        raw in role_variant().prop_filter("not exact", |r| r != "user" && r != "admin"),
    ) {
        prop_assert_eq!(Role::parse(&raw), Err(Role::RULE));
    }
}

#[test]
fn each_role_round_trips_through_its_name() {
    for role in [Role::User, Role::Admin] {
        assert_eq!(Role::parse(role.as_str()), Ok(role));
    }
}

// ---------------------------------------------------------------------------
// Moving the clock
// ---------------------------------------------------------------------------

/// A clock move in milliseconds: whole seconds (which land exactly on window
/// and lock boundaries), anything up to `max_secs`, or less than a second and
/// a half (which lands just either side of them).
fn clock_move(max_secs: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        (0..=max_secs).prop_map(|s| s * 1000),
        0..=max_secs * 1000,
        0..1500u64,
    ]
}

fn retry_after(res: &TestResponse) -> Option<u64> {
    res.header("retry-after").parse().ok()
}

// ---------------------------------------------------------------------------
// Per-IP login rate limit
// ---------------------------------------------------------------------------

/// Distinct slots under [`JWT_SECRET`] (the property checks it).
const CLIENTS: [&str; 3] = ["198.51.100.1", "198.51.100.2", "[2001:db8:1:2::7]"];

#[derive(Clone, Debug)]
enum RateStep {
    /// A login from `CLIENTS[n % clients]`.
    Attempt(usize),
    /// Moves the clock this many milliseconds.
    Wait(u64),
    /// Moves the clock a window, give or take this many milliseconds: after
    /// a burst, this lands on the edge of the burst's window.
    WaitWindow(i64),
}

/// Just before, at, or just after the end of a window or lock.
fn edge() -> impl Strategy<Value = i64> {
    select(vec![-1000, -1, 0, 0, 1])
}

fn rate_steps() -> impl Strategy<Value = Vec<RateStep>> {
    let step = prop_oneof![
        3 => (0..CLIENTS.len()).prop_map(RateStep::Attempt),
        2 => clock_move(90).prop_map(RateStep::Wait),
        1 => edge().prop_map(RateStep::WaitWindow),
    ];
    prop::collection::vec(step, 1..=60)
}

/// The rule of `src/security/rate_limit.rs`: a sliding window over every
/// attempt of a client, refused ones included.
struct RateModel {
    limit: usize,
    window_ms: u64,
    /// Times of all attempts of one client, allowed or not.
    attempts: Vec<u64>,
}

impl RateModel {
    /// Whether an attempt at `now` is allowed: fewer than `limit` earlier
    /// attempts in the window of length `window_ms` that ends at `now`.
    fn allows(&self, now: u64) -> bool {
        self.attempts
            .iter()
            .filter(|&&at| at + self.window_ms > now)
            .count()
            < self.limit
    }

    /// Records an attempt at `now`; returns whether it was allowed, or
    /// else the whole seconds (at least 1) until the next would be.
    fn attempt(&mut self, now: u64) -> Result<(), u64> {
        let allowed = self.allows(now);
        self.attempts.push(now);
        if allowed {
            return Ok(());
        }
        let wait = (1..)
            .find(|secs| self.allows(now + secs * 1000))
            .expect("a window later everything is allowed");
        Err(wait)
    }
}

proptest! {
    #![proptest_config(config())]

    /// Exact: with requests one at a time and no store faults, the limiter
    /// decides every attempt from the record of attempt `n - limit`, which
    /// is always present, so the model's "must be allowed" side holds
    /// strictly too (no conservative refusals to allow for), and Retry-After
    /// is exactly the wait after which the next attempt passes.
    #[test]
    fn login_rate_limit_is_a_sliding_window_over_every_attempt(
        limit in 1..=5usize,
        window_secs in 1..=60u64,
        clients in 1..=CLIENTS.len(),
        steps in rate_steps(),
    ) {
        let app = TestApp::with_vars(&[
            ("login_rate_limit", &limit.to_string()),
            ("login_rate_window_seconds", &window_secs.to_string()),
            // Failed logins of unknown names lock their name's slot too.
            ("lockout_threshold", "1000"),
            ("jwt_secret", JWT_SECRET),
        ]);
        let window_ms = window_secs * 1000;
        let mut models: Vec<RateModel> = (0..clients)
            .map(|_| RateModel { limit, window_ms, attempts: Vec::new() })
            .collect();
        // When each client's answers other than 429 came.
        let mut passed: Vec<Vec<u64>> = vec![Vec::new(); clients];
        for (i, step) in steps.iter().enumerate() {
            let n = match *step {
                RateStep::Wait(ms) => {
                    app.clock.advance_ms(ms);
                    continue;
                }
                RateStep::WaitWindow(edge) => {
                    app.clock.advance_ms(window_ms.saturating_add_signed(edge));
                    continue;
                }
                RateStep::Attempt(n) => n % clients,
            };
            let now = app.clock.now_ms();
            // A fresh unknown name each time: a wrong password, never a lock.
            let res = app.login_from(&format!("nobody{i}"), "wrong password", CLIENTS[n]);
            let got = (res.status, res.code().to_owned(), retry_after(&res));
            let want = match models[n].attempt(now) {
                Ok(()) => (401, "invalid_credentials".to_owned(), None),
                Err(wait) => (429, "rate_limited".to_owned(), Some(wait)),
            };
            prop_assert_eq!(got, want, "step {} ({} from {})", i, now - START_MS, CLIENTS[n]);
            if res.status != 429 {
                passed[n].push(now);
            }
        }
        // The contract on its own: in any rolling window, at most `limit`
        // attempts of a client get past the limiter.
        for (n, times) in passed.iter().enumerate() {
            for run in times.windows(limit + 1) {
                prop_assert!(
                    run[limit] - run[0] >= window_ms,
                    "{} passes from {} within {} ms",
                    limit + 1,
                    CLIENTS[n],
                    run[limit] - run[0],
                );
            }
        }
        // Every client that made an attempt had a window of its own.
        let used = models.iter().filter(|m| !m.attempts.is_empty()).count();
        let slots = app
            .store
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("rl:login:") && k.ends_with(":seq"))
            .count();
        prop_assert_eq!(slots, used, "two of CLIENTS share a slot: pick others");
    }
}

// ---------------------------------------------------------------------------
// Account lockout
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum LockStep {
    /// A login of the account, spelt `SPELLINGS[spelling]`, with the right
    /// password or a wrong one.
    Login { right: bool, spelling: usize },
    /// Moves the clock this many milliseconds.
    Wait(u64),
    /// Moves the clock a lock duration, give or take this many milliseconds.
    WaitLock(i64),
}

/// Lockout ignores the case of the name.
const SPELLINGS: [&str; 3] = ["alice", "Alice", "ALICE"];

fn lock_steps() -> impl Strategy<Value = Vec<LockStep>> {
    let spelling = || 0..SPELLINGS.len();
    // Failures outnumber successes, so that streaks reach the threshold.
    let step = prop_oneof![
        1 => spelling().prop_map(|spelling| LockStep::Login { right: true, spelling }),
        3 => spelling().prop_map(|spelling| LockStep::Login { right: false, spelling }),
        2 => clock_move(30).prop_map(LockStep::Wait),
        1 => edge().prop_map(LockStep::WaitLock),
    ];
    prop::collection::vec(step, 1..=40)
}

/// The rule of `src/security/lockout.rs`, one attempt at a time: the
/// `threshold`-th consecutive failure locks the account for `lock_ms` from
/// then (so no attempt is refused 423 before it, and every attempt is until
/// the lock runs out, to the millisecond); while locked, every attempt is
/// refused with the password unchecked and counts for nothing; a success,
/// or the end of a lock, starts the count again. Sequential attempts never
/// take a ticket past the threshold, so the "locked now" path of
/// `lockout::begin` (attempts in flight) has no part in it.
struct LockModel {
    threshold: u32,
    lock_ms: u64,
    streak: u32,
    locked_until: Option<u64>,
}

enum Answer {
    Ok,
    WrongPassword,
    /// Locked, for this many whole seconds more (at least 1).
    Locked(u64),
}

impl LockModel {
    fn login(&mut self, right: bool, now: u64) -> Answer {
        if let Some(until) = self.locked_until.filter(|&until| until > now) {
            return Answer::Locked((until - now).div_ceil(1000).max(1));
        }
        if right {
            self.streak = 0;
            return Answer::Ok;
        }
        self.streak += 1;
        if self.streak == self.threshold {
            self.locked_until = Some(now + self.lock_ms);
            // The next period counts from zero once this lock is over.
            self.streak = 0;
        }
        Answer::WrongPassword
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn lockout_follows_consecutive_failures_exactly(
        threshold in 1..=6u32,
        // bcrypt_cost 4: 1 s is the shortest lock config.rs accepts.
        lock_secs in 1..=20u64,
        steps in lock_steps(),
    ) {
        let app = TestApp::with_vars(&[
            ("login_rate_limit", "1000"),
            ("lockout_threshold", &threshold.to_string()),
            ("lockout_duration_seconds", &lock_secs.to_string()),
            ("jwt_secret", JWT_SECRET),
        ]);
        prop_assert_eq!(app.register("alice", PASSWORD).status, 201);
        let mut model = LockModel {
            threshold,
            lock_ms: lock_secs * 1000,
            streak: 0,
            locked_until: None,
        };
        for (i, step) in steps.iter().enumerate() {
            let (right, spelling) = match *step {
                LockStep::Wait(ms) => {
                    app.clock.advance_ms(ms);
                    continue;
                }
                LockStep::WaitLock(edge) => {
                    app.clock.advance_ms((lock_secs * 1000).saturating_add_signed(edge));
                    continue;
                }
                LockStep::Login { right, spelling } => (right, spelling),
            };
            let now = app.clock.now_ms();
            let password = if right { PASSWORD } else { "wrong password" };
            // A fresh address each time keeps the rate limit out of the way
            // whatever its setting.
            let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
            let res = app.login_from(SPELLINGS[spelling], password, &ip);
            let got = (res.status, res.code().to_owned(), retry_after(&res));
            let want = match model.login(right, now) {
                Answer::Ok => (200, String::new(), None),
                Answer::WrongPassword => (401, "invalid_credentials".to_owned(), None),
                Answer::Locked(secs) => (423, "account_locked".to_owned(), Some(secs)),
            };
            prop_assert_eq!(got, want, "step {} at {} ms", i, now - START_MS);
        }
    }
}
