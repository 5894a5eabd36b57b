//! Prints an access token the service issues to the fixture's user under
//! the token target's key, at the fixture's time: the token target's seed
//! `corpus/token/issued-user.jwt`. It never expires there, since the target's
//! clock stands still.
//!
//!     cargo +nightly run --example mint_token > corpus/token/issued-user.jwt

use secure_backend_fuzz::fixture::{Fixture, JWT_SECRET};

fn main() {
    let fixture = Fixture::new(&[("jwt_secret", JWT_SECRET)]);
    print!("{}", fixture.user.access);
}
