//! The restore walk: creates directories, files, hard links, symlinks and special files
//! in tree order, and hands opened files to the workers.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_repo::{Node, NodeKind};
use nix::sys::stat::SFlag;

use super::writer::FileJob;
use super::{Ctx, Overwrite, RestoreSummary, names_of};
use crate::dir_handle::DirHandle;
use crate::metadata::{Target, kind_of};
use crate::selection::PatternSet;
use crate::{Error, Result};

/// A directory on the walk stack.
struct Frame {
    nodes: std::vec::IntoIter<Node>,
    /// Every name the snapshot has here (for `delete`).
    names: HashSet<Vec<u8>>,
    /// The directory's path inside the snapshot (for patterns).
    snapshot_dir: PathBuf,
    /// Its path in the target (for messages).
    target: PathBuf,
    /// The open target directory; `None` until created (and always in a dry run).
    handle: Option<Arc<DirHandle>>,
    created: bool,
    /// This directory's node (`None` for where the walk starts).
    node: Option<Node>,
    /// Everything below is restored (an include pattern matched here or above).
    included: bool,
}

pub(crate) struct Walker<'a, 'w> {
    pub(crate) ctx: &'a Ctx<'a>,
    pub(crate) includes: &'a PatternSet,
    pub(crate) excludes: &'a PatternSet,
    pub(crate) summary: &'w mut RestoreSummary,
    /// (device, inode) at backup time -> the first restored link of that file.
    pub(crate) hardlinks: HashMap<(u64, u64), (Arc<DirHandle>, Vec<u8>)>,
    pub(crate) send: &'w dyn Fn(FileJob) -> Result<()>,
}

impl Walker<'_, '_> {
    pub(crate) fn run(
        &mut self,
        root: Option<Arc<DirHandle>>,
        nodes: Vec<Node>,
        snapshot_dir: PathBuf,
    ) -> Result<()> {
        let target = root
            .as_ref()
            .map(|h| h.path().to_path_buf())
            .unwrap_or_default();
        let mut stack = vec![Frame {
            names: names_of(&nodes),
            nodes: nodes.into_iter(),
            snapshot_dir,
            target,
            handle: root,
            created: true,
            node: None,
            included: self.includes.is_empty(),
        }];
        while let Some(frame) = stack.last_mut() {
            if self.ctx.cancelled() {
                return Err(Error::interrupted());
            }
            match frame.nodes.next() {
                Some(node) => self.entry(&mut stack, node)?,
                None => {
                    if let Some(done) = stack.pop() {
                        self.finish_dir(done, stack.last());
                    }
                }
            }
        }
        Ok(())
    }

    fn entry(&mut self, stack: &mut Vec<Frame>, node: Node) -> Result<()> {
        let Some(frame) = stack.last() else {
            return Ok(());
        };
        let name = OsStr::from_bytes(&node.name);
        let snapshot_path = frame.snapshot_dir.join(name);
        let target = frame.target.join(name);
        if self.excludes.matches(&snapshot_path) {
            return Ok(());
        }
        let included = frame.included || self.includes.matches(&snapshot_path);
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
            let tree = match self.ctx.repo.load_tree(&subtree) {
                Ok(t) => t,
                Err(e) => {
                    self.ctx
                        .fail(&target, format!("cannot read directory listing: {e}"));
                    return Ok(());
                }
            };
            let nodes = tree.into_nodes();
            stack.push(Frame {
                names: names_of(&nodes),
                nodes: nodes.into_iter(),
                snapshot_dir: snapshot_path,
                target,
                handle: None,
                created: false,
                node: Some(node),
                included,
            });
            if included && !self.ensure_dirs(stack) {
                stack.pop();
            }
            return Ok(());
        }
        if !included || !self.ensure_dirs(stack) {
            return Ok(());
        }
        let Some(dir) = stack.last().and_then(|f| f.handle.clone()) else {
            // A dry run: count what would be restored.
            match node.kind {
                NodeKind::File => {
                    self.summary.files += 1;
                    self.summary.bytes += node.size;
                }
                _ => self.summary.other += 1,
            }
            return Ok(());
        };
        match node.kind {
            NodeKind::File => self.file(&dir, node, target),
            NodeKind::Symlink => {
                self.symlink(&dir, &node, &target);
                Ok(())
            }
            _ => {
                self.special(&dir, &node, &target);
                Ok(())
            }
        }
    }

    /// Creates every directory on the stack that is not created yet; false if one
    /// failed (recorded; the entry is skipped).
    fn ensure_dirs(&mut self, stack: &mut [Frame]) -> bool {
        for i in 0..stack.len() {
            if stack[i].created {
                continue;
            }
            if self.ctx.options.dry_run {
                stack[i].created = true;
                self.summary.dirs += 1;
                continue;
            }
            let (Some(parent), Some(node)) = (
                i.checked_sub(1).and_then(|p| stack[p].handle.clone()),
                stack[i].node.as_ref(),
            ) else {
                return false;
            };
            let opened = match parent.mkdir(&node.name, 0o700) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
                // An existing directory is reused; anything else in the way is refused
                // (child() does not follow a symlink).
                _ => parent.child(&node.name),
            };
            match opened {
                Ok(handle) => {
                    stack[i].handle = Some(Arc::new(handle));
                    stack[i].created = true;
                    self.summary.dirs += 1;
                }
                Err(e) => {
                    self.ctx
                        .fail(&stack[i].target, format!("cannot create directory: {e}"));
                    return false;
                }
            }
        }
        true
    }

    /// Leaving a directory: remove extra entries (with `delete`), then set its metadata.
    fn finish_dir(&mut self, frame: Frame, parent: Option<&Frame>) {
        let Some(handle) = frame.handle.as_ref().filter(|_| frame.created) else {
            return;
        };
        if self.ctx.options.delete && frame.included {
            match handle.names() {
                Ok(present) => {
                    for name in present.iter().filter(|n| !frame.names.contains(*n)) {
                        match handle.remove_all(name) {
                            Ok(()) => self.summary.deleted += 1,
                            Err(e) => self
                                .ctx
                                .fail(&handle.join(name), format!("cannot delete: {e}")),
                        }
                    }
                }
                Err(e) => self
                    .ctx
                    .fail(&frame.target, format!("cannot list for --delete: {e}")),
            }
        }
        if let (Some(node), Some(parent)) = (&frame.node, parent.and_then(|p| p.handle.as_ref()))
            && let Err(e) =
                self.ctx
                    .apply_metadata(Target::Entry(parent, &node.name), &frame.target, node)
        {
            self.ctx
                .fail(&frame.target, format!("cannot set metadata: {e}"));
        }
    }

    /// What to do with an existing entry where a non-directory goes: `Ok(true)` to
    /// create it anew (the old one is gone), `Ok(false)` to leave it.
    fn make_room(
        &mut self,
        dir: &DirHandle,
        node: &Node,
        keep_if: impl Fn(&nix::sys::stat::FileStat) -> bool,
    ) -> io::Result<bool> {
        match dir.lstat(&node.name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e),
            Ok(st) if kind_of(&st) == NodeKind::Dir => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            )),
            Ok(st) => {
                if self.ctx.options.overwrite == Overwrite::Never || keep_if(&st) {
                    return Ok(false);
                }
                dir.unlink(&node.name)?;
                Ok(true)
            }
        }
    }

    fn file(&mut self, dir: &Arc<DirHandle>, node: Node, target: PathBuf) -> Result<()> {
        let key = (node.device, node.inode);
        if node.links > 1
            && let Some((first_dir, first_name)) = self.hardlinks.get(&key).cloned()
        {
            let linked = self.make_room(dir, &node, |_| false).and_then(|fresh| {
                if fresh {
                    dir.hard_link(&first_dir, &first_name, &node.name)
                } else {
                    Ok(())
                }
            });
            match linked {
                Ok(()) => {
                    self.summary.hardlinks += 1;
                    return Ok(());
                }
                // E.g. the first link's directory is not writable by this user: fall
                // back to a separate copy.
                Err(e) => self.ctx.warn(
                    &target,
                    format!("restored as a copy, cannot hard-link: {e}"),
                ),
            }
        }
        let overwrite = self.ctx.options.overwrite;
        let existing = match dir.lstat(&node.name) {
            Ok(st) if kind_of(&st) == NodeKind::File => Some(st),
            _ => None,
        };
        let file = match existing {
            Some(st) if overwrite == Overwrite::Never => {
                let _ = st;
                self.summary.files_skipped += 1;
                return Ok(());
            }
            Some(st)
                if overwrite == Overwrite::IfNewer
                    && (st.st_mtime, st.st_mtime_nsec)
                        >= (node.mtime.secs, i64::from(node.mtime.nanos)) =>
            {
                self.summary.files_skipped += 1;
                return Ok(());
            }
            Some(st)
                if overwrite == Overwrite::IfChanged && st.st_size.max(0) as u64 == node.size =>
            {
                dir.open_rw(&node.name).map(|f| (f, true))
            }
            _ => self
                .make_room(dir, &node, |_| false)
                .and_then(|_| dir.create_file(&node.name))
                .map(|f| (f, false)),
        };
        match file {
            Ok((file, existing)) => {
                if node.links > 1 {
                    self.hardlinks.insert(key, (dir.clone(), node.name.clone()));
                }
                (self.send)(FileJob {
                    file,
                    dir: dir.clone(),
                    path: target,
                    node,
                    existing,
                })
            }
            Err(e) => {
                self.ctx.fail(&target, format!("cannot create: {e}"));
                Ok(())
            }
        }
    }

    /// Makes room for `node` and, unless what is there stays, creates it with `create`
    /// and sets its metadata. `Ok(false)`: the existing entry was kept.
    fn place(
        &mut self,
        dir: &DirHandle,
        node: &Node,
        target: &Path,
        create: impl FnOnce() -> std::io::Result<()>,
    ) -> std::io::Result<bool> {
        if !self.make_room(dir, node, |_| false)? {
            return Ok(false);
        }
        create()?;
        self.ctx
            .apply_metadata(Target::Entry(dir, &node.name), target, node)?;
        Ok(true)
    }

    fn symlink(&mut self, dir: &DirHandle, node: &Node, target: &Path) {
        let result = self.place(dir, node, target, || dir.symlink(&node.target, &node.name));
        match result {
            Ok(true) => self.summary.other += 1,
            Ok(false) => self.summary.files_skipped += 1,
            Err(e) => self.ctx.fail(target, format!("cannot create symlink: {e}")),
        }
    }

    /// FIFOs, devices and sockets. Devices need privileges; without them the entry is
    /// skipped with a warning.
    fn special(&mut self, dir: &DirHandle, node: &Node, target: &Path) {
        let kind = match node.kind {
            NodeKind::Fifo => SFlag::S_IFIFO,
            NodeKind::BlockDevice => SFlag::S_IFBLK,
            NodeKind::CharDevice => SFlag::S_IFCHR,
            NodeKind::Socket => SFlag::S_IFSOCK,
            _ => {
                self.ctx.fail(target, "unknown entry type".to_owned());
                return;
            }
        };
        let result = self.place(dir, node, target, || {
            dir.mknod(&node.name, kind, node.mode & 0o7777, node.rdev)
        });
        match result {
            Ok(true) => self.summary.other += 1,
            Ok(false) => self.summary.files_skipped += 1,
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM) && !nix::unistd::geteuid().is_root() =>
            {
                self.ctx
                    .warn(target, "skipped: creating devices requires root".to_owned());
            }
            Err(e) => self.ctx.fail(target, format!("cannot create: {e}")),
        }
    }
}
