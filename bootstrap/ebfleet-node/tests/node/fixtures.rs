//! Tiny easyconfigs the tests write themselves: C programs from local
//! source tarballs, SYSTEM toolchain, `MakeCp`.

use crate::common::Easyconfig;
use std::path::{Path, PathBuf};

/// `<dir>/<nv>.tar` holding `<nv>/<file>` for each file.
pub fn source_tar(dir: &Path, nv: &str, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{nv}.tar"));
    let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("{nv}/{name}"), text.as_bytes())
            .unwrap();
    }
    b.into_inner().unwrap();
    path
}

fn easyconfig(name: &str, description: &str, extra: &str) -> String {
    format!(
        "easyblock = 'MakeCp'\n\
         name = '{name}'\n\
         version = '1.0'\n\
         homepage = 'https://example.org/{name}'\n\
         description = \"{description}\"\n\
         toolchain = SYSTEM\n\
         sources = ['{name}-1.0.tar']\n\
         {extra}"
    )
}

/// `hello/1.0`: `libhello.a`, `hello.h` and a `hello` program. Its source
/// tarball is returned for the test to put in the bucket's `sources/`.
pub fn hello(src: &Path) -> (Easyconfig, PathBuf) {
    let tar = source_tar(
        src,
        "hello-1.0",
        &[
            ("hello.h", "const char *hello_greeting(void);\n"),
            (
                "hello.c",
                "#include \"hello.h\"\nconst char *hello_greeting(void) { return \"hello from libhello 1.0\"; }\n",
            ),
            (
                "main.c",
                "#include <stdio.h>\n#include \"hello.h\"\nint main(void) { puts(hello_greeting()); return 0; }\n",
            ),
            (
                "Makefile",
                "all:\n\t$(CC) -O2 -c hello.c\n\tar rcs libhello.a hello.o\n\t$(CC) -O2 -o hello main.c libhello.a\n",
            ),
        ],
    );
    let ec = easyconfig(
        "hello",
        "A tiny library and program",
        "files_to_copy = [(['hello'], 'bin'), (['libhello.a'], 'lib'), (['hello.h'], 'include')]\n\
         sanity_check_paths = {'files': ['bin/hello', 'lib/libhello.a', 'include/hello.h'], 'dirs': []}\n\
         sanity_check_commands = ['hello']\n",
    );
    (Easyconfig::new("hello/1.0", ec), tar)
}

/// `greeter/1.0`: compiled against hello's header and library (found only
/// through the loaded `hello` module's `$EBROOTHELLO`); its source comes
/// from a `file://` URL, so EasyBuild fetches it and `upload` publishes it.
pub fn greeter(src: &Path) -> Easyconfig {
    source_tar(
        src,
        "greeter-1.0",
        &[
            (
                "greet.c",
                "#include <stdio.h>\n#include \"hello.h\"\nint main(void) { printf(\"greeter says: %s\\n\", hello_greeting()); return 0; }\n",
            ),
            (
                "Makefile",
                "all:\n\t$(CC) -O2 -o greet greet.c -I$(EBROOTHELLO)/include -L$(EBROOTHELLO)/lib -lhello\n",
            ),
        ],
    );
    let ec = easyconfig(
        "greeter",
        "A tiny program linked against libhello",
        &format!(
            "source_urls = ['file://{}']\n\
             dependencies = [('hello', '1.0')]\n\
             files_to_copy = [(['greet'], 'bin')]\n\
             sanity_check_paths = {{'files': ['bin/greet'], 'dirs': []}}\n\
             sanity_check_commands = ['greet', 'hello']\n",
            src.display()
        ),
    );
    Easyconfig::new("greeter/1.0", ec)
}

/// `broken/1.0`: does not compile.
pub fn broken(src: &Path) -> Easyconfig {
    source_tar(
        src,
        "broken-1.0",
        &[
            ("broken.c", "int main(void) { this is not C; }\n"),
            ("Makefile", "all:\n\t$(CC) -o broken broken.c\n"),
        ],
    );
    let ec = easyconfig(
        "broken",
        "Does not compile",
        &format!(
            "source_urls = ['file://{}']\n\
             files_to_copy = [(['broken'], 'bin')]\n\
             sanity_check_paths = {{'files': ['bin/broken'], 'dirs': []}}\n",
            src.display()
        ),
    );
    Easyconfig::new("broken/1.0", ec)
}

/// `needsbroken/1.0`: depends on `broken/1.0`.
pub fn needs_broken(src: &Path) -> Easyconfig {
    source_tar(
        src,
        "needsbroken-1.0",
        &[
            ("x.c", "int main(void) { return 0; }\n"),
            ("Makefile", "all:\n\t$(CC) -o x x.c\n"),
        ],
    );
    let ec = easyconfig(
        "needsbroken",
        "Depends on broken",
        &format!(
            "source_urls = ['file://{}']\n\
             dependencies = [('broken', '1.0')]\n\
             files_to_copy = [(['x'], 'bin')]\n\
             sanity_check_paths = {{'files': ['bin/x'], 'dirs': []}}\n",
            src.display()
        ),
    );
    Easyconfig::new("needsbroken/1.0", ec)
}

/// `solo/1.0`: depends on nothing (the batch's independent module); its
/// source comes from a `file://` URL.
pub fn solo(src: &Path) -> Easyconfig {
    source_tar(
        src,
        "solo-1.0",
        &[
            (
                "solo.c",
                "#include <stdio.h>\nint main(void) { puts(\"solo 1.0\"); return 0; }\n",
            ),
            ("Makefile", "all:\n\t$(CC) -O2 -o solo solo.c\n"),
        ],
    );
    let ec = easyconfig(
        "solo",
        "A tiny program that needs nothing",
        &format!(
            "source_urls = ['file://{}']\n\
             files_to_copy = [(['solo'], 'bin')]\n\
             sanity_check_paths = {{'files': ['bin/solo'], 'dirs': []}}\n\
             sanity_check_commands = ['solo']\n",
            src.display()
        ),
    );
    Easyconfig::new("solo/1.0", ec)
}
