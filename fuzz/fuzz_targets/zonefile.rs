#![no_main]
//! `cargo fuzz run zonefile -s none`: see clusterdns::fuzzing::zonefile.

libfuzzer_sys::fuzz_target!(|data: &[u8]| clusterdns::fuzzing::zonefile(data));
