//! The moto server every `*_moto.rs` test talks to (started by `scripts/test.sh`).

use std::sync::Once;

/// moto's URL, with the dummy credentials and region the SDK needs to sign set once. A missing
/// `MSS_TEST_AWS_ENDPOINT` fails the test and says how to get one: never a silent skip.
pub fn endpoint() -> String {
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        // moto accepts any credentials; the SDK needs some to sign with.
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "ap-northeast-1"),
        ] {
            if std::env::var(k).is_err() {
                // SAFETY: set once, before any client reads the environment.
                unsafe { std::env::set_var(k, v) };
            }
        }
    });
    std::env::var("MSS_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("MSS_TEST_AWS_ENDPOINT is not set: run ./scripts/test.sh (it installs and starts moto's server), or start `moto_server -H 127.0.0.1 -p PORT` and set MSS_TEST_AWS_ENDPOINT=http://127.0.0.1:PORT")
    })
}
