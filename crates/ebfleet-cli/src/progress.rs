//! A progress bar on a terminal through each planning phase: reading
//! thousands of easyconfigs, resolving the targets, planning platforms.

use ebfleet_planner::tree::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

pub struct Bar(ProgressBar);

impl Bar {
    /// A bar on stderr when it is a terminal; hidden otherwise.
    pub fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar(bar)
    }

    /// `pos` of `len` done, with `msg`.
    pub fn show(&self, msg: &str, pos: usize, len: usize) {
        self.0.set_message(msg.to_string());
        self.0.set_length(len as u64);
        self.0.set_position(pos as u64);
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn phase(&self, what: &str, total: usize) {
        self.0.set_message(what.to_string());
        self.0.set_position(0);
        self.0.set_length(total as u64);
    }

    fn inc(&self) {
        self.0.inc(1);
    }
}
