#![no_main]
//! `cargo fuzz run roundtrip -s none`: see clusterdns::fuzzing::roundtrip.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::roundtrip(data));
