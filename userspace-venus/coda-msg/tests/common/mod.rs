// SPDX-License-Identifier: GPL-2.0

//! Compares Rust layouts and constants with what gcc computes from the C headers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

/// One value to compare: a key, the C expression computing it, the Rust value.
pub struct Item {
    pub key: String,
    pub c_expr: String,
    pub rust: u64,
}

#[derive(Default)]
pub struct Items(pub Vec<Item>);

impl Items {
    pub fn push(&mut self, key: impl Into<String>, c_expr: impl Into<String>, rust: u64) {
        self.0.push(Item {
            key: key.into(),
            c_expr: c_expr.into(),
            rust,
        });
    }

    /// A constant of the same name on both sides.
    pub fn constant(&mut self, name: &str, rust: u64) {
        self.push(name, format!("(unsigned long long)({name})"), rust);
    }
}

/// Size of the field `f` selects, for comparing with `sizeof` of the C member.
pub fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    core::mem::size_of::<F>()
}

/// Records the size of a struct and the offset and size of each listed field.
/// `layout!(items, "coda_lookup_in", LookupIn { "ih" => ih, "VFid" => vfid, ... })`.
/// With `prefix`, the Rust struct is only the start of the C one and sizes are not compared.
#[macro_export]
macro_rules! layout {
    ($items:expr, $c:literal, $ty:ty { $($cf:literal => $rf:ident),* $(,)? }) => {{
        $items.push(
            format!("sizeof {}", $c),
            format!("sizeof(struct {})", $c),
            core::mem::size_of::<$ty>() as u64,
        );
        $crate::layout!($items, prefix $c, $ty { $($cf => $rf),* });
    }};
    ($items:expr, prefix $c:literal, $ty:ty { $($cf:literal => $rf:ident),* $(,)? }) => {{
        $items.push(
            format!("alignof {}", $c),
            format!("_Alignof(struct {})", $c),
            core::mem::align_of::<$ty>() as u64,
        );
        $(
            $items.push(
                format!("offsetof {}.{}", $c, $cf),
                format!("offsetof(struct {}, {})", $c, $cf),
                core::mem::offset_of!($ty, $rf) as u64,
            );
            $items.push(
                format!("sizeof {}.{}", $c, $cf),
                format!("sizeof(((struct {} *)0)->{})", $c, $cf),
                $crate::common::field_size(|s: &$ty| &s.$rf) as u64,
            );
        )*
    }};
}

/// The kernel source tree: `$KSRC` or the project's cache.  Panics when it is missing: these
/// tests must never pass without having seen the kernel's headers.
pub fn ksrc() -> PathBuf {
    let dir = std::env::var_os("KSRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root/.cache/coda-psdev/src/linux-source-7.3"));
    let coda_h = dir.join("include/uapi/linux/coda.h");
    assert!(
        coda_h.is_file(),
        "kernel source not found: {} is missing (set KSRC to a Linux 7.3 source tree)",
        coda_h.display()
    );
    dir
}

/// The project's own uapi directory (`uapi/coda_psdev.h`).
pub fn project_uapi() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../uapi")
}

/// Compiles a C program that prints every item's C value with gcc, runs it and compares with
/// the Rust values.  `prelude` holds the #includes.
pub fn compare_with_c(name: &str, prelude: &str, include_dirs: &[PathBuf], items: &Items) {
    let mut src = String::new();
    src.push_str(prelude);
    src.push_str("\nint main(void)\n{\n");
    for it in &items.0 {
        writeln!(
            src,
            "\tprintf(\"%s=%llu\\n\", \"{}\", (unsigned long long)({}));",
            it.key, it.c_expr
        )
        .unwrap();
    }
    src.push_str("\treturn 0;\n}\n");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c_file, &src).unwrap();

    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cc.args(["-Wall", "-Werror", "-D__user=", "-D__EXPORTED_HEADERS__"]);
    for d in include_dirs {
        cc.arg("-I").arg(d);
    }
    cc.arg("-o").arg(&exe).arg(&c_file);
    let out = cc.output().expect("running gcc");
    assert!(
        out.status.success(),
        "gcc failed on {}:\n{}",
        c_file.display(),
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(&exe)
        .output()
        .expect("running the layout program");
    assert!(out.status.success());
    let c_values: BTreeMap<String, u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.rsplit_once('=').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect();

    let mut bad = Vec::new();
    for it in &items.0 {
        let c = c_values[&it.key];
        if c != it.rust {
            bad.push(format!("{}: C {} Rust {}", it.key, c, it.rust));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(items.0.len() > 10);
}
