#!/usr/bin/env bash
# Builds docker-sandbox in release mode and installs it as a Docker CLI plugin,
# `docker-<name>` in docker's plugin folder. Refuses to overwrite (or remove) a
# `docker-<name>` that belongs to someone else: Docker Desktop 4.50+ ships its
# own, unrelated `docker-sandbox` plugin. Run `./install.sh --help` for usage.

# Backticks in single-quoted printf formats are literal on purpose: they quote names.
# shellcheck disable=SC2016

set -euo pipefail

script_dir=$(cd -P -- "$(dirname -- "$0")" && pwd -P)
self=$0
case $self in
    */*) ;;
    *) self=./$self ;;
esac

# Our Vendor string, as in plugin-metadata/metadata.json (used if that file is missing).
fallback_vendor="docker-sandbox project"

usage() {
    cat <<EOF
Usage: $self [OPTIONS]

Builds docker-sandbox (cargo build --release --locked) and installs it as the
Docker CLI plugin \`docker-NAME\`, so that \`docker NAME ...\` runs it.

Options:
  --dir DIR       install into DIR instead of docker's plugin folder
                  (default: \$DOCKER_CONFIG/cli-plugins if DOCKER_CONFIG is set,
                  else ~/.docker/cli-plugins)
  --name NAME     install as \`docker-NAME\` (default: sandbox); NAME must match
                  [a-z][a-z0-9]* (docker ignores plugins with other names) and
                  must not be a built-in docker command
  --binary PATH   install this already-built binary instead of building one
  --force         replace or remove a \`docker-NAME\` that is not ours
  --uninstall     remove \`docker-NAME\` from the folder, if it is ours
  -h, --help      print this help and exit

An existing \`docker-NAME\` is asked for its plugin metadata; if its Vendor is
not ours (for example Docker Desktop's own \`docker-sandbox\`, Vendor
"Docker Inc."), it is left alone unless --force is given: install ours under
another name with --name instead.

Exit codes:
  0  installed, removed, or nothing to remove
  1  failure: the build failed, the binary is not docker-sandbox, the folder
     cannot be written, or an existing \`docker-NAME\` is not ours (refused)
  2  usage error: unknown option, missing value, or a NAME docker cannot use
EOF
}

# Prints `error:` and any `hint:` lines, then exits 1.
die() {
    printf 'error: %s\n' "$1" >&2
    shift
    for hint in "$@"; do
        printf 'hint: %s\n' "$hint" >&2
    done
    exit 1
}

usage_error() {
    printf 'error: %s\n' "$1" >&2
    printf 'hint: run `%s --help` for usage\n' "$self" >&2
    exit 2
}

warn() {
    printf 'warning: %s\n' "$1" >&2
    shift
    for hint in "$@"; do
        printf 'hint: %s\n' "$hint" >&2
    done
}

# Runs a command with a time limit when `timeout` exists (it does not on stock macOS).
limited() {
    local seconds=$1
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout "$seconds" "$@"
    else
        "$@"
    fi
}

# Reads JSON on stdin and prints the string value of top-level-looking key $1,
# without jq or python: newlines are folded so pretty and compact JSON both work.
json_string() {
    tr '\n\r\t' '   ' |
        sed -nE 's/.*[{,][[:space:]]*"'"$1"'"[[:space:]]*:[[:space:]]*"(([^"\\]|\\.)*)".*/\1/p'
}

# Prints the metadata JSON plugin $1 answers with; fails if it does not answer.
plugin_metadata() {
    limited 10 "$1" docker-cli-plugin-metadata </dev/null 2>/dev/null
}

# Prints the Vendor of plugin $1, or nothing if it does not answer.
plugin_vendor() {
    local meta
    meta=$(plugin_metadata "$1") || return 0
    printf '%s' "$meta" | json_string Vendor
}

# --- arguments ---------------------------------------------------------------

opt_dir=""
dir_given=0
name="sandbox"
binary=""
force=0
uninstall=0

need_value() {
    if [ "$2" -lt 2 ]; then
        usage_error "\`$1\` needs a value"
    fi
}

while [ "$#" -gt 0 ]; do
    case $1 in
        -h | --help)
            usage
            exit 0
            ;;
        --dir)
            need_value "$1" "$#"
            opt_dir=$2
            dir_given=1
            shift 2
            ;;
        --dir=*)
            opt_dir=${1#*=}
            dir_given=1
            shift
            ;;
        --name)
            need_value "$1" "$#"
            name=$2
            shift 2
            ;;
        --name=*)
            name=${1#*=}
            shift
            ;;
        --binary)
            need_value "$1" "$#"
            binary=$2
            shift 2
            ;;
        --binary=*)
            binary=${1#*=}
            shift
            ;;
        --force)
            force=1
            shift
            ;;
        --uninstall)
            uninstall=1
            shift
            ;;
        *)
            usage_error "unexpected argument \`$1\`"
            ;;
    esac
done

# Docker's own rule for plugin names (cli-plugins/manager): no hyphens.
case $name in
    "" | [!a-z]* | *[!a-z0-9]*)
        usage_error "invalid name \`$name\`: a plugin name must match [a-z][a-z0-9]* (docker ignores \`docker-$name\` otherwise)"
        ;;
esac
if [ "$dir_given" = 1 ] && [ -z "$opt_dir" ]; then
    usage_error "\`--dir\` needs a value"
fi
if [ "$uninstall" = 1 ] && [ -n "$binary" ]; then
    usage_error "\`--binary\` cannot be used with \`--uninstall\`"
fi

if [ -n "${DOCKER_CONFIG:-}" ]; then
    default_dir=$DOCKER_CONFIG/cli-plugins
elif [ -n "${HOME:-}" ]; then
    default_dir=$HOME/.docker/cli-plugins
else
    default_dir=""
fi
dir=${opt_dir:-$default_dir}
if [ -z "$dir" ]; then
    die "cannot tell where docker looks for plugins: neither HOME nor DOCKER_CONFIG is set" \
        "pass the folder with --dir DIR"
fi
plugin=docker-$name
target=$dir/$plugin

our_vendor=$fallback_vendor
if [ -f "$script_dir/plugin-metadata/metadata.json" ]; then
    our_vendor=$(json_string Vendor <"$script_dir/plugin-metadata/metadata.json")
    [ -n "$our_vendor" ] || die "no Vendor in \`$script_dir/plugin-metadata/metadata.json\`"
fi

# Sets `foreign_vendor` to the Vendor of the existing target when it is not ours
# (a placeholder if it does not answer); empty when the target is ours.
check_existing() {
    if [ -d "$target" ] && [ ! -L "$target" ]; then
        die "\`$target\` is a folder, not a plugin"
    fi
    local vendor
    vendor=$(plugin_vendor "$target")
    if [ "$vendor" = "$our_vendor" ]; then
        foreign_vendor=""
    elif [ -z "$vendor" ]; then
        foreign_vendor="unknown: it does not answer docker-cli-plugin-metadata"
    else
        foreign_vendor="\"$vendor\""
    fi
}

# Refuses (exit 1) when the existing target is not ours and --force was not given.
refuse_foreign() {
    local action=$1
    if [ -n "$foreign_vendor" ] && [ "$force" = 0 ]; then
        printf 'error: `%s` is another plugin, not docker-sandbox (Vendor %s); refusing to %s it\n' \
            "$target" "$foreign_vendor" "$action" >&2
        if [ "$uninstall" = 0 ]; then
            printf 'hint: install under another name: %s --name <name>\n' "$self" >&2
        fi
        printf 'hint: pass --force to %s it anyway\n' "$action" >&2
        exit 1
    fi
}

# --- uninstall ---------------------------------------------------------------

if [ "$uninstall" = 1 ]; then
    if [ ! -e "$target" ] && [ ! -L "$target" ]; then
        printf 'nothing to remove: `%s` does not exist\n' "$target"
        exit 0
    fi
    check_existing
    refuse_foreign remove
    rm -f -- "$target" || die "failed to remove \`$target\`"
    if [ -n "$foreign_vendor" ]; then
        printf 'removed `%s` (Vendor %s; --force)\n' "$target" "$foreign_vendor"
    else
        printf 'removed `%s`\n' "$target"
    fi
    exit 0
fi

# --- install -----------------------------------------------------------------

# A plugin named like a built-in command is ignored by docker ("duplicates
# builtin command"): refuse before building. Built-ins are the help's entries
# without the `*` that marks plugins.
if command -v docker >/dev/null 2>&1; then
    docker_help=$(limited 20 docker --help 2>/dev/null) || docker_help=""
    if sed '/^Invalid Plugins:/,$d' <<<"$docker_help" |
        grep -E "^[[:space:]]+${name}([[:space:]]|\$)" >/dev/null; then
        usage_error "\`$name\` is a built-in docker command: docker would ignore a plugin with that name"
    fi
fi

# Check the existing plugin before a long build, so a refusal is quick.
foreign_vendor=""
if [ -e "$target" ] || [ -L "$target" ]; then
    check_existing
    refuse_foreign replace
fi

if [ -z "$binary" ]; then
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found on PATH" \
            "install Rust from https://rustup.rs, or pass an already-built binary with --binary PATH"
    printf 'building docker-sandbox: cargo build --release --locked (in `%s`)\n' "$script_dir"
    (cd "$script_dir" && cargo build --release --locked) ||
        die "\`cargo build --release --locked\` failed in \`$script_dir\`"
    # The target folder may be moved by CARGO_TARGET_DIR or cargo's config: ask cargo.
    target_dir=$(cd "$script_dir" && cargo metadata --format-version 1 --no-deps --offline 2>/dev/null |
        json_string target_directory) || target_dir=""
    binary=${target_dir:-${CARGO_TARGET_DIR:-$script_dir/target}}/release/docker-sandbox
fi
if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "\`$binary\` is not an executable file"
fi

new_meta=$(plugin_metadata "$binary") ||
    die "\`$binary\` does not answer \`docker-cli-plugin-metadata\`: it is not docker-sandbox"
new_vendor=$(printf '%s' "$new_meta" | json_string Vendor)
if [ -z "$new_vendor" ]; then
    die "\`$binary\` is not docker-sandbox: its \`docker-cli-plugin-metadata\` answer has no Vendor"
elif [ "$new_vendor" != "$our_vendor" ]; then
    die "\`$binary\` is not docker-sandbox: its Vendor is \"$new_vendor\", ours is \"$our_vendor\""
fi
new_version=$(printf '%s' "$new_meta" | json_string Version)
new_description=$(printf '%s' "$new_meta" | json_string ShortDescription)

mkdir -p -- "$dir" || die "failed to create \`$dir\`"
dir=$(cd -P -- "$dir" && pwd -P)
target=$dir/$plugin

# Atomic replace: a reader (or a running copy) never sees half a binary, and a
# symlink at the target (Docker Desktop links its plugins) is replaced, not followed.
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f -- "$tmp"; fi' EXIT
tmp=$(mktemp "$dir/.$plugin.XXXXXX") || die "failed to create a temp file in \`$dir\`"
cp -- "$binary" "$tmp" || die "failed to copy \`$binary\` to \`$tmp\`"
chmod 0755 "$tmp" || die "failed to chmod \`$tmp\`"
mv -f -- "$tmp" "$target" || die "failed to move \`$tmp\` to \`$target\`"
tmp=""

if [ -n "$foreign_vendor" ]; then
    warn "replaced \`$target\` (Vendor $foreign_vendor) because of --force"
fi
printf 'installed docker-sandbox %s as `%s`\n' "$new_version" "$target"

is_default=0
if [ -n "$default_dir" ] && [ -d "$default_dir" ] &&
    [ "$(cd -P -- "$default_dir" && pwd -P)" = "$dir" ]; then
    is_default=1
fi

# Docker lists the plugins it finds in `docker --help` without contacting the
# engine; check that it finds this one (and not another `docker-NAME` first,
# e.g. from `cliPluginsExtraDirs` in docker's config.json).
if [ "$is_default" = 1 ] && command -v docker >/dev/null 2>&1; then
    docker_help=$(limited 20 docker --help 2>/dev/null) || docker_help=""
    line=$(grep -E "^[[:space:]]+${name}\*[[:space:]]" <<<"$docker_help" | sed -n 1p) || line=""
    if [ -z "$line" ]; then
        invalid=$(sed -n '/^Invalid Plugins:/,$p' <<<"$docker_help" |
            grep -E "^[[:space:]]+${name}[[:space:]]" | sed -n 1p) || invalid=""
        if [ -n "$invalid" ]; then
            warn "docker rejects the plugin:${invalid#"${invalid%%[![:space:]]*}"}"
        else
            warn "\`docker --help\` does not list \`$name\`: docker did not find the plugin" \
                "check that docker's config folder is \`${default_dir%/cli-plugins}\`"
        fi
    else
        case $line in
            *"$new_description"*) ;;
            *)
                warn "docker runs another \`$plugin\` as \`docker $name\`, found before this one (it lists: ${line#"${line%%[![:space:]]*}"})" \
                    "look for \`$plugin\` in the folders of \`cliPluginsExtraDirs\` in \`${default_dir%/cli-plugins}/config.json\`" \
                    "install under another name: $self --name <name>"
                ;;
        esac
    fi
elif [ "$is_default" = 0 ]; then
    printf 'note: docker looks for plugins in `%s`, its system folders and `cliPluginsExtraDirs` of its config.json; `%s` must be one of them\n' \
        "${default_dir:-~/.docker/cli-plugins}" "$dir"
fi

printf 'next: run `docker %s provision`\n' "$name"
