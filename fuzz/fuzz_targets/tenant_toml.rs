#![no_main]
//! See `mss_fuzz::tenant_toml` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mss_fuzz::tenant_toml(data));
