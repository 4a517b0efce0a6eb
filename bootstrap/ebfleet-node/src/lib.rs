//! `ebfleet-node`, the agent on a build node: one subcommand per step of a
//! batch — `sync`, `build`, `tar`, `upload` — each a separate, checkable
//! command the state machine runs through SSM, plus `heartbeat` for Step
//! Functions. Each step reads the batch file the planner wrote
//! (`plans/<execution>/<platform>/<batch>.json`), checks it against its
//! command line ([`job`]), does its part, writes a small JSON result into
//! the batch's state directory ([`layout`]) for the next step, and prints it.
//!
//! - [`sync`] downloads only the batch's leases file (when the `Lease`
//!   state wrote one), easyconfigs, the tarballs and module files of the
//!   modules it needs, and known sources; verified, parallel, skipping
//!   what is installed. A need an earlier batch never uploaded is listed,
//!   not fatal.
//! - [`build`] runs `eb` per module ([`eb`]: argv, never a shell; as the
//!   unprivileged [`build_user`] when node.env names one) and
//!   reports each as built, failed with a [`classify`]d reason, or skipped
//!   (not leased to the batch, or a dependency failed, was skipped or is
//!   missing from the bucket).
//! - [`pack`] (`tar`) packs each built module deterministically ([`archive`]).
//! - [`upload`] publishes tarballs, module files, sources and logs, then
//!   the batch [`manifest`] the record Lambda reads.
//!
//! # Checksums
//!
//! Every object the node writes carries the SHA-256 of its content as the
//! S3 user metadata `sha256` (and S3's own checksum header, so S3 refuses a
//! corrupted upload). `sync` reads a need's sha256 from its tarball's
//! metadata (one HeadObject), compares it with the installed marker, and
//! verifies the download against it. The metadata is part of the object:
//! it cannot disagree with the content the way a separate checksum file
//! could after a crash between two writes. The manifest records the same
//! sha256 and size for DynamoDB.
//!
//! # Safe by construction
//!
//! Every name that reaches a path, a key or `eb`'s argv is one of
//! `ebfleet_core::names`' validated types; the batch file is refused before
//! anything runs when it is not ([`job`]); tarballs are unpacked entry by
//! entry, refusing anything that would land outside the module
//! ([`archive`]); node.env is parsed strictly ([`envfile`]).
//!
//! # Resumable
//!
//! Each step can be run again after a crash or a spot interruption and
//! finishes the job without redoing or duplicating work: `sync` skips
//! modules whose marker matches the bucket; `build` and `tar` keep the
//! outcomes recorded after every module; `upload` skips objects already in
//! the bucket with the same sha256 and resumes multipart uploads from the
//! parts S3 holds ([`transfer`]).

pub mod archive;
pub mod build;
pub mod build_user;
pub mod classify;
pub mod cli;
pub mod context;
pub mod eb;
pub mod envfile;
pub mod heartbeat;
pub mod job;
pub mod layout;
pub mod machine;
pub mod manifest;
pub mod pack;
pub mod sync;
pub mod transfer;
pub mod upload;
