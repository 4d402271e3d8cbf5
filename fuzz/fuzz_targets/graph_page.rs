#![no_main]
//! See `mss_fuzz::graph_page` for the properties checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mss_fuzz::graph_page(data));
