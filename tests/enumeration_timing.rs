//! An unknown username must cost the same bcrypt work as a wrong password,
//! so response time does not reveal which accounts exist. Wall-clock time
//! is too noisy to assert on a shared machine, so this counts bcrypt runs.
//! (Its own test binary: the counter is process-wide.)

mod common;

use common::*;
use secure_backend::security::passwords::bcrypt_runs;

#[test]
fn unknown_user_and_wrong_password_cost_the_same_bcrypt_work() {
    let app = TestApp::with_vars(&[("bcrypt_cost", "10")]);
    app.register("alice", PASSWORD);

    let before = bcrypt_runs();
    assert_eq!(
        app.login_from("alice", "wrong password", "10.0.0.1").status,
        401
    );
    let wrong_password = bcrypt_runs() - before;

    let before = bcrypt_runs();
    assert_eq!(
        app.login_from("mallory", "wrong password", "10.0.0.2")
            .status,
        401
    );
    let unknown_user = bcrypt_runs() - before;

    assert_eq!(wrong_password, 1);
    assert_eq!(unknown_user, wrong_password);
}
