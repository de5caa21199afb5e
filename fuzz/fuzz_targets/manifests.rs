#![no_main]
//! `cargo fuzz run manifests -s none`: see clusterdns::fuzzing::manifests.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::manifests(data));
