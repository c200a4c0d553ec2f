#!/usr/bin/env bash
# make test-deploy, part 2: static checks of deploy/Dockerfile (no linter for
# Dockerfiles is packaged here, and no engine can build it):
#  - every COPY source exists in the repository, the CMake options the build
#    stage passes are options of CMakeLists.txt, and the copied sources
#    configure with them (so the COPY list misses no directory);
#  - every runtime package name exists in Debian 12 (apt-cache show);
#  - where build/server/dtmd exists, every shared library it loads comes from
#    a package of the runtime list (ldd mapped with dpkg -S), so the list
#    follows the link line.
#
# Usage: deploy/check_dockerfile.sh BUILD_DIR
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: $0 BUILD_DIR}
dockerfile="$repo/deploy/Dockerfile"
passed=0
failed=0
fail() { echo "deploy: FAIL: $*"; failed=$((failed + 1)); }

# Joins continuation lines so each instruction is one line.
instructions=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" | grep -v '^\s*#')

# COPY sources (not --from=stage copies) exist.
while read -r src; do
  if [ -e "$repo/$src" ]; then passed=$((passed + 1)); else fail "COPY source $src does not exist"; fi
done < <(echo "$instructions" | awk '$1 == "COPY" && $2 !~ /^--from=/ { for (i = 2; i < NF; i++) print $i }')

# -DDTMD_* options exist.
while read -r opt; do
  if grep -q "option($opt " "$repo/CMakeLists.txt"; then passed=$((passed + 1)); else fail "no CMake option $opt"; fi
done < <(grep -o -- '-D\(DTMD_[A-Z_]*\)' "$dockerfile" | sed 's/^-D//' | sort -u)

# The build stage's sources are enough: its COPYs, laid out as in the image,
# configure with its CMake options (configure only; the build is make build's).
context="$build/deploy/context"
rm -rf "$context" "$context-build"
mkdir -p "$context"
while read -r -a words; do
  dest=${words[-1]}
  for src in "${words[@]:1:${#words[@]}-2}"; do
    mkdir -p "$context/$(dirname "${dest%/}")"
    cp -r "$repo/$src" "$context/$dest"
  done
done < <(echo "$instructions" | awk '$1 == "COPY" && $2 !~ /^--from=/')
read -r -a cmake_args <<< "$(echo "$instructions" | grep -o 'cmake -S \. -B build[^&]*' | sed 's/cmake -S \. -B build//')"
if cmake -S "$context" -B "$context-build" "${cmake_args[@]}" > "$build/deploy/configure.log" 2>&1; then
  passed=$((passed + 1))
else
  fail "the build stage's sources do not configure (cmake ${cmake_args[*]}):"
  tail -20 "$build/deploy/configure.log"
fi

# The runtime stage's packages: the install line after the last FROM.
runtime=$(echo "$instructions" | awk '$1 == "FROM" { stage = "" } { stage = stage "\n" $0 } END { print stage }' \
  | grep 'apt-get install' | sed 's/.*--no-install-recommends//; s/&&.*//')
read -r -a packages <<< "$runtime"
if [ ${#packages[@]} -lt 10 ]; then
  fail "found only ${#packages[@]} runtime packages: ${packages[*]}"
fi
if ! grep -q 'VERSION_ID="12"' /etc/os-release 2>/dev/null; then
  echo "deploy: this host is not Debian 12: runtime package names not checked"
else
  # apt's lists are needed to look names up; fetch them once if absent.
  if ! apt-cache show --no-all-versions libc6 >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
  fi
  # One look-up for all: apt-cache prints a record for each name it knows.
  known=" $(apt-cache show --no-all-versions "${packages[@]}" 2>/dev/null \
    | sed -n 's/^Package: //p' | tr '\n' ' ') "
  for p in "${packages[@]}"; do
    if [[ "$known" == *" $p "* ]]; then
      passed=$((passed + 1))
    else
      fail "runtime package $p is not in Debian 12"
    fi
  done
fi

# The libraries dtmd loads all come from the runtime packages.
dtmd="$build/server/dtmd"
if [ -x "$dtmd" ]; then
  # One dpkg -S for all: each library by its ldd path and its real path, in
  # both the /lib and /usr/lib spellings (dpkg records either).
  mapfile -t libs < <(ldd "$dtmd" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
  candidates=()
  for lib in "${libs[@]}"; do
    for f in "$lib" "$(readlink -f "$lib")"; do
      candidates+=("$f" "${f/#\/usr\/lib\//\/lib\/}" "${f/#\/lib\//\/usr\/lib\/}")
    done
  done
  declare -A owner_of=()
  while IFS= read -r line; do
    owner_of[${line#*: }]=${line%%:*}
  done < <(dpkg -S "${candidates[@]}" 2>/dev/null | grep -v '^diversion' || true)
  for lib in "${libs[@]}"; do
    owner=""
    real=$(readlink -f "$lib")
    for f in "$lib" "$real" "${real/#\/usr\/lib\//\/lib\/}" "${real/#\/lib\//\/usr\/lib\/}" \
        "${lib/#\/usr\/lib\//\/lib\/}" "${lib/#\/lib\//\/usr\/lib\/}"; do
      [ -n "${owner_of[$f]:-}" ] && owner=${owner_of[$f]} && break
    done
    if [ -z "$owner" ]; then
      fail "no package owns $lib (dtmd links it)"
    elif [[ " ${packages[*]} " == *" $owner "* ]]; then
      passed=$((passed + 1))
    else
      fail "dtmd loads $lib from $owner, which the runtime stage does not install"
    fi
  done
else
  echo "deploy: $dtmd not built: its libraries not compared with the runtime list"
fi

echo "deploy-dockerfile: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
