#!/usr/bin/env bash
# Installs plugwarden the two ways users do and runs the README's main job
# (`plugwarden sanitize samples/ --out safe/`) from the installed files
# alone, as root (CI runs it from .ci/run):
#
# 1. `cargo install --path . --root DIR`, then DIR/bin/plugwarden with
#    nothing but DIR/bin on PATH;
# 2. the Debian package (packaging/deb/build.sh): `dpkg -i`, the main job
#    from /usr/bin, man pages, completions and policies in place, then
#    `dpkg -r`, after which nothing of the package is left.
#
# Both use one build in target/ (cargo install --target-dir target
# reuses it): the release profile, or CARGO_PROFILE (CI passes `dev` to
# reuse the build its tests just made). Ends with "N passed, M failed".
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
[ "$(id -u)" = 0 ] || {
    echo "test-install.sh: run as root (it installs a Debian package)" >&2
    exit 2
}
passed=0
failed=0
check() { # check NAME COMMAND...: one result line
    if "${@:2}"; then
        passed=$((passed + 1))
        echo "ok: $1"
    else
        failed=$((failed + 1))
        echo "FAILED: $1"
    fi
}
work=$(mktemp -d)
chmod 0755 "$work"
installed=
cleanup() {
    [ -z "$installed" ] || dpkg -r plugwarden >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# The main job with `bin` as the only directory on PATH. Every input gets
# a verdict; the hostile bombs are refused, so the exit status is 1.
main_job() { # main_job NAME BIN_DIR
    local out=$work/$1 status=0
    (cd "$work" && env -i PATH="$2" HOME="$work" plugwarden sanitize "$repo/samples/" --out "$out/safe/") \
        >"$out.stdout" 2>"$out.stderr" || status=$?
    check "$1: the main job exits 1 (some hostile inputs refused)" [ "$status" = 1 ]
    [ "$status" = 1 ] || tail -n 5 "$out.stderr"
    for f in benign.png benign.jpg benign.gif benign.bmp; do
        check "$1: $f.safe.png is a PNG" magic "$out/safe/$f.safe.png" 1 PNG
    done
    check "$1: benign.pdf.safe.pdf is a PDF" magic "$out/safe/benign.pdf.safe.pdf" 0 %PDF-
    check "$1: the decompression bomb is refused" grep -q 'hostile-bomb.png.*image too large' "$out.stdout"
    check "$1: the bomb left no output" [ ! -e "$out/safe/hostile-bomb.png.safe.png" ]
    if [ -x /usr/lib/libreoffice/program/soffice.bin ]; then
        check "$1: office/benign.docx.safe.pdf is a PDF (LibreOffice in its sandbox)" \
            magic "$out/safe/office/benign.docx.safe.pdf" 0 %PDF-
    fi
    check "$1: doctor --check runs a sandboxed child under each policy" \
        env -i PATH="$2" plugwarden doctor --check
}

section() { echo "== $*"; }
magic() { # magic FILE OFFSET TEXT: FILE holds TEXT at OFFSET
    [ "$(tail -c +$(($2 + 1)) "$1" | head -c ${#3})" = "$3" ]
}

section "the Debian package: build"
deb=$(packaging/deb/build.sh "$work/deb" | tail -n 1)
echo "$deb"

section "cargo install --path . --root DIR"
cargo install --locked --path . --root "$work/root" --target-dir target \
    --profile "${CARGO_PROFILE:-release}" 2>&1 | tail -n 2
check "cargo install: plugwarden and the three sanitize plugins in DIR/bin" \
    test -x "$work/root/bin/plugwarden" -a -x "$work/root/bin/pw-image-sanitize" -a -x "$work/root/bin/pw-pdf-sanitize" -a -x "$work/root/bin/pw-office-convert"
main_job cargo-install "$work/root/bin"

section "the Debian package: dpkg -i"
if dpkg-query -W -f='${Status}' plugwarden 2>/dev/null | grep -q 'ok installed'; then
    echo "plugwarden was installed before this test: removing it first"
    dpkg -r plugwarden >/dev/null
fi
installed=1
dpkg -i "$deb"
dpkg -L plugwarden | sort >"$work/files"
check "dpkg -i: installed" dpkg-query -W plugwarden
check "/usr/bin/plugwarden" test -x /usr/bin/plugwarden
for p in pw-image-sanitize pw-pdf-sanitize pw-office-convert; do
    check "/usr/lib/plugwarden/$p is root's, mode 0755" \
        test "$(stat -c '%U %a' /usr/lib/plugwarden/$p)" = "root 755"
done
for p in strict default image pdf office ocr; do
    check "policy $p.toml is shipped and sound" \
        /usr/bin/plugwarden policy check /usr/share/plugwarden/policies/$p.toml
done
check "man page plugwarden(1)" sh -c 'zcat /usr/share/man/man1/plugwarden.1.gz | grep -q "^.TH plugwarden 1"'
check "man page plugwarden-sanitize(1)" test -f /usr/share/man/man1/plugwarden-sanitize.1.gz
if command -v man >/dev/null; then
    check "man -w plugwarden finds the page" sh -c 'man -w plugwarden | grep -q /usr/share/man/man1/plugwarden.1.gz'
fi
# shellcheck disable=SC2016 # expanded by the inner shell
check "bash completion loads and completes subcommands" bash -c '
    source /usr/share/bash-completion/completions/plugwarden
    COMP_WORDS=(plugwarden san); COMP_CWORD=1; _plugwarden plugwarden san plugwarden
    [ "${COMPREPLY[*]}" = sanitize ]'
check "zsh completion" grep -q '^#compdef plugwarden' /usr/share/zsh/vendor-completions/_plugwarden
check "fish completion" grep -q '^complete -c plugwarden' /usr/share/fish/vendor_completions.d/plugwarden.fish
check "--version names commit, target, Landlock and seccomp" sh -c \
    '/usr/bin/plugwarden --version | grep -q "^commit: " && /usr/bin/plugwarden --version | grep -q "^landlock: ABI" && /usr/bin/plugwarden --version | grep -q "^seccomp: "'
main_job deb /usr/bin

section "the Debian package: dpkg -r"
dpkg -r plugwarden
installed=
check "dpkg -r: not installed any more" sh -c "! dpkg-query -W -f='\${Status}' plugwarden 2>/dev/null | grep -q 'ok installed'"
# Directories such as /usr/bin stay; everything that is the package's goes.
left=$(while read -r f; do
    [ -e "$f" ] && [ ! -d "$f" ] && echo "$f"
    case $f in /usr/lib/plugwarden | /usr/share/plugwarden* | /usr/share/doc/plugwarden)
        [ -e "$f" ] && echo "$f" ;;
    esac
done <"$work/files")
check "dpkg -r: no file of the package left${left:+ (left: $left)}" [ -z "$left" ]
check "no process of the installed files left" sh -c "! pgrep -f '^(/usr/bin/plugwarden|/usr/lib/plugwarden/|$work/)' >/dev/null"

echo "test-install: $passed passed, $failed failed"
[ "$failed" = 0 ]
