//! Who could change a file the host trusts: a plugin's executable or a
//! policy file. Trusted means that no user but root and the one running
//! the host can change the file or replace it: the file and every
//! directory above it are owned by one of them and writable by no one
//! else (a sticky directory such as /tmp may be, since only an entry's
//! owner can replace it there).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why another user could change or replace `path` (the first file or
/// directory on its path that allows it, and how), or `None` when no one
/// but root and this process's user can.
pub(crate) fn replaceable_by_others(path: &Path) -> io::Result<Option<String>> {
    let me = nix::unistd::geteuid().as_raw();
    let real = std::fs::canonicalize(path)?;
    for p in real.ancestors() {
        let meta = std::fs::metadata(p)?;
        let who = Owner {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            dir: meta.is_dir(),
        };
        if let Some(why) = who.others_can_replace(me) {
            return Ok(Some(format!("{} {why}", p.display())));
        }
    }
    Ok(None)
}

/// The owner and mode of one file or directory on a trusted file's path.
struct Owner {
    uid: u32,
    gid: u32,
    mode: u32,
    dir: bool,
}

impl Owner {
    /// Why a user other than root and `me` could change it or an entry in
    /// it, if one could.
    fn others_can_replace(&self, me: u32) -> Option<String> {
        let sticky = self.dir && self.mode & 0o1000 != 0;
        if self.uid != 0 && self.uid != me {
            Some(format!("is owned by uid {}", self.uid))
        } else if self.mode & 0o002 != 0 && !sticky {
            Some("is writable by every user".into())
        } else if self.mode & 0o020 != 0 && self.gid != 0 && !sticky {
            Some(format!("is writable by group {}", self.gid))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn owner(uid: u32, gid: u32, mode: u32, dir: bool) -> Owner {
        Owner {
            uid,
            gid,
            mode,
            dir,
        }
    }

    #[test]
    fn test_trusted_owner_root_or_me_with_no_foreign_write_passes() {
        assert_eq!(owner(0, 0, 0o755, false).others_can_replace(0), None);
        assert_eq!(
            owner(1000, 1000, 0o755, false).others_can_replace(1000),
            None
        );
        assert_eq!(owner(0, 0, 0o775, true).others_can_replace(0), None);
        assert_eq!(owner(0, 0, 0o1777, true).others_can_replace(0), None);
    }

    #[test]
    fn test_foreign_owner_or_write_is_named() {
        let cases = [
            (owner(1000, 0, 0o755, false), "is owned by uid 1000"),
            (owner(0, 0, 0o777, false), "is writable by every user"),
            (owner(0, 0, 0o1777, false), "is writable by every user"),
            (owner(0, 0, 0o777, true), "is writable by every user"),
            (owner(0, 50, 0o775, true), "is writable by group 50"),
        ];
        for (o, why) in cases {
            assert_eq!(o.others_can_replace(0).as_deref(), Some(why));
        }
    }

    #[test]
    fn test_a_world_writable_directory_on_the_path_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        let file = open.join("f");
        std::fs::write(&file, "x").unwrap();
        assert_eq!(replaceable_by_others(&file).unwrap(), None);
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = replaceable_by_others(&file).unwrap().unwrap();
        assert!(why.ends_with("open is writable by every user"), "{why}");
    }
}
