//! The checks that need the resolved policy (the `extends` chain
//! applied): limits in effect, syscalls at start-up, errno answers and
//! `deny` entries without effect, risky grants, argument filters.

use toml::Spanned;

use super::key_position;
use super::{Checker, Severity};
use crate::policy::{groups, line_col, parse, Policy, PolicyFile};

impl Checker<'_> {
    /// Checks that need the resolved policy (the `extends` chain applied).
    pub(super) fn resolved(&mut self, f: &PolicyFile, p: &Policy) {
        let l = &p.limits;
        if l.cpu > l.wall {
            let pos = key_position(self.text, "limits", "cpu");
            self.at(
                Severity::Warning,
                pos,
                format!(
                    "limits.cpu ({}) is above limits.wall ({}): the wall limit always ends the job first",
                    humantime::format_duration(l.cpu),
                    humantime::format_duration(l.wall)
                ),
            );
        }
        if p.worker.recycle_rss > l.memory {
            let pos = key_position(self.text, "worker", "recycle_rss");
            self.at(
                Severity::Warning,
                pos,
                format!(
                    "worker.recycle_rss ({}) is above limits.memory ({}): a worker hits the memory limit before it is recycled",
                    bytesize::ByteSize(p.worker.recycle_rss),
                    bytesize::ByteSize(l.memory)
                ),
            );
        }
        let own_proc_grants =
            |list: &[Spanned<String>]| list.iter().any(|i| i.get_ref().starts_with("/proc"));
        let inherited_proc = [&p.filesystem.read, &p.filesystem.write, &p.filesystem.exec]
            .iter()
            .any(|l| l.iter().any(|path| path.starts_with("/proc")))
            && ![&f.filesystem.read, &f.filesystem.write, &f.filesystem.exec]
                .iter()
                .any(|l| own_proc_grants(l));
        if !p.namespaces.pid && inherited_proc {
            let pos = key_position(self.text, "namespaces", "pid");
            self.at(
                Severity::Warning,
                pos,
                "namespaces.pid = false withholds the inherited grant of /proc (without a PID namespace of its own the plugin's /proc would show the host's processes)".into(),
            );
        }
        self.errno_without_effect(f, p);
        self.startup_missing(f, p);
        self.deny_never_allowed(f, p);
        self.risky(f, p);
        self.arguments(f, p);
    }

    /// Calls of `@default` and `@startup` the allowlist lacks (and no errno
    /// answers): most programs make them before `main`, so they end with a
    /// violation at start. Located at the `deny` entry that removes them,
    /// else at the top of the file.
    pub(super) fn startup_missing(&mut self, f: &PolicyFile, p: &Policy) {
        let needed = groups::expand(&["@default", "@startup"]).unwrap_or_default();
        let missing: Vec<&str> = needed
            .into_iter()
            .filter(|n| !p.syscalls.allow.contains(*n) && !p.syscalls.errno.contains_key(*n))
            .filter(|n| !crate::seccomp::ALWAYS.contains(n))
            .filter(|n| groups::number(groups::Arch::native(), n).is_some())
            .collect();
        if missing.is_empty() {
            return;
        }
        let at = f
            .syscalls
            .deny
            .iter()
            .find(|d| {
                groups::expand(&[d.get_ref().as_str()])
                    .is_ok_and(|m| m.iter().any(|n| missing.contains(n)))
            })
            .map_or((1, 1), |d| line_col(self.text, d.span().start));
        self.at(
            Severity::Warning,
            at,
            format!(
                "the allowlist lacks {} of @default/@startup, which the dynamic loader, libc and Rust std call before main: most programs will end with a violation as they start",
                missing.join(", ")
            ),
        );
    }

    /// errno entries for syscalls the policy allows outright: the errno
    /// answers only calls the allowlist does not admit.
    pub(super) fn errno_without_effect(&mut self, f: &PolicyFile, p: &Policy) {
        let Some(table) = &f.syscalls.errno else {
            return;
        };
        for name in table.keys() {
            let members = groups::expand(&[name.get_ref().as_str()]).unwrap_or_default();
            if !members.is_empty()
                && members.iter().all(|m| {
                    p.syscalls.allow.contains(*m) && !crate::seccomp::ARGUMENT_RULED.contains(m)
                })
            {
                self.at_span(
                    Severity::Warning,
                    name.span(),
                    format!(
                        "errno for {:?} has no effect: it is allowed, and an errno answers only calls the allowlist does not admit; remove it from allow to answer it",
                        name.get_ref()
                    ),
                );
            }
        }
    }

    pub(super) fn deny_never_allowed(&mut self, f: &PolicyFile, p: &Policy) {
        // Everything any file of the chain allows, before any deny.
        let mut ever = std::collections::BTreeSet::new();
        for source in &p.sources {
            if let Ok(file) = parse(self.origin, source) {
                let names: Vec<&str> = file
                    .syscalls
                    .allow
                    .iter()
                    .map(|s| s.get_ref().as_str())
                    .collect();
                ever.extend(groups::expand(&names).unwrap_or_default());
            }
        }
        for d in &f.syscalls.deny {
            let names = groups::expand(&[d.get_ref().as_str()]).unwrap_or_default();
            if !names.iter().any(|n| ever.contains(n)) {
                self.at_span(
                    Severity::Warning,
                    d.span(),
                    format!(
                        "deny {:?} removes nothing: it is never allowed; remove it",
                        d.get_ref()
                    ),
                );
            }
        }
    }

    /// Where this file grants `name`: the allow entry that names it (itself
    /// or a group holding it), else the `extends` it inherits it through.
    pub(super) fn granted_at(&self, f: &PolicyFile, name: &str) -> ((usize, usize), String) {
        let entry = f.syscalls.allow.iter().find(|item| {
            groups::expand(&[item.get_ref().as_str()]).is_ok_and(|members| members.contains(&name))
        });
        match (entry, &f.extends) {
            (Some(item), _) if item.get_ref() == name => {
                (line_col(self.text, item.span().start), String::new())
            }
            (Some(item), _) => (
                line_col(self.text, item.span().start),
                format!(" (through {})", item.get_ref()),
            ),
            (None, Some(ext)) => (
                line_col(self.text, ext.span().start),
                format!(" (inherited from {:?})", ext.get_ref()),
            ),
            (None, None) => ((1, 1), String::new()),
        }
    }

    pub(super) fn risky(&mut self, f: &PolicyFile, p: &Policy) {
        for (name, why) in groups::RISKY {
            if p.syscalls.allow.contains(*name) {
                let (pos, via) = self.granted_at(f, name);
                self.at(
                    Severity::Warning,
                    pos,
                    format!("risky grant: {name}{via} {why}"),
                );
            }
        }
    }

    pub(super) fn arguments(&mut self, f: &PolicyFile, p: &Policy) {
        let s = &p.syscalls;
        if s.allow.contains("ioctl") && s.ioctl.is_empty() {
            let (pos, _) = self.granted_at(f, "ioctl");
            self.at(
                Severity::Warning,
                pos,
                "ioctl is allowed but syscalls.ioctl lists no request, so every ioctl is still denied; list the requests".into(),
            );
        }
        let socket = ["socket", "socketpair"]
            .into_iter()
            .find(|n| s.allow.contains(*n));
        if let (Some(socket), true) = (socket, s.socket_families.is_empty()) {
            let (pos, _) = self.granted_at(f, socket);
            self.at(
                Severity::Warning,
                pos,
                format!("{socket} is allowed for every address family (including AF_INET and AF_NETLINK); list syscalls.socket_families"),
            );
        }
        if !p.network.connect_tcp.is_empty() && !s.allow.contains("connect") {
            let pos = key_position(self.text, "network", "connect_tcp");
            self.at(
                Severity::Warning,
                pos,
                "network.connect_tcp has no effect: the connect syscall is not allowed".into(),
            );
        }
        if !p.network.bind_tcp.is_empty() && !s.allow.contains("bind") {
            let pos = key_position(self.text, "network", "bind_tcp");
            self.at(
                Severity::Warning,
                pos,
                "network.bind_tcp has no effect: the bind syscall is not allowed".into(),
            );
        }
    }
}
