//! Integration tests: the real server on loopback sockets, queried over UDP and TCP.

mod any;
mod apiserver;
mod autopath;
mod batch;
mod bind;
mod bufsize;
mod chaos;
mod cli;
mod corefiles;
mod endpoints;
mod flood;
mod forward;
mod harness;
mod hostile;
mod hosts;
mod kube_api;
mod kube_tls;
mod limits;
mod manifests_shipped;
mod protocol;
mod reload;
mod rewrite;
mod rrl;
mod spec;
mod upstream;
