#![no_main]
//! `cargo fuzz run corefile -s none`: see clusterdns::fuzzing::corefile.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::corefile(data));
