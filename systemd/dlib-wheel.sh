# Which OpenBLAS dlib build a CPU can run. Sourced (POSIX sh) by install.sh, make-bundle.sh and
# the Makefile, so the three agree; tests/systemd/test_dlib_wheel.py runs it on fake cpuinfo.
#
# On a host with AVX2 the OpenBLAS dlib is built with -march=x86-64-v3 (Makefile dlib-blas:
# dlib's HOG detector needs 8-lane integer SIMD). That wheel dies with SIGILL on import on a CPU
# below x86-64-v3 (many Celeron/Atom/Pentium boxes sold as terminals), so it is only installed
# where /proc/cpuinfo shows every x86-64-v3 feature; otherwise dlib-bin stays. (dlib-bin itself
# is built with AVX, docs/face.md: a CPU without AVX runs neither.)

# x86-64 psABI level 3, as /proc/cpuinfo names the flags (LZCNT is "abm").
X86_64_V3_FLAGS="avx avx2 bmi1 bmi2 f16c fma abm movbe xsave"

# cpu_has_x86_64_v3 [CPUINFO]: true if the CPU has every x86-64-v3 feature.
cpu_has_x86_64_v3() {
  _flags=$(grep -m 1 '^flags' "${1:-/proc/cpuinfo}" 2>/dev/null) || return 1
  _flags=" ${_flags#*:} "
  for _f in $X86_64_V3_FLAGS; do
    case "$_flags" in *" $_f "*) ;; *) return 1 ;; esac
  done
  return 0
}

# dlib_blas_arch [CPUINFO [MACHINE]]: the target the OpenBLAS dlib is built for on this CPU
# (names the wheel cache folder blas-<target>-nogui and the bundle's wheelhouse/dlib-blas-<target>).
dlib_blas_arch() {
  _machine=${2:-$(uname -m)}
  if [ "$_machine" = x86_64 ] && cpu_has_x86_64_v3 "${1:-/proc/cpuinfo}"; then
    echo x86-64-v3
  else
    echo "$_machine"
  fi
}

# bundle_dlib_wheel WHEELHOUSE [CPUINFO [MACHINE]]: prints the bundle's OpenBLAS dlib wheel if
# this CPU can run it, else nothing (and says why on stderr): dlib-bin from the wheelhouse stays.
bundle_dlib_wheel() {
  _wheel=$(find "$1" -name 'dlib-*.whl' | head -n 1)
  [ -n "$_wheel" ] || return 0
  _target=$(basename "$(dirname "$_wheel")")
  case "$_target" in
    dlib-blas-*) _target=${_target#dlib-blas-} ;;
    # Bundles before the target was recorded were all built on an AVX2 host.
    *) _target=x86-64-v3 ;;
  esac
  _machine=${3:-$(uname -m)}
  if [ "$_target" = x86-64-v3 ]; then
    if [ "$_machine" = x86_64 ] && cpu_has_x86_64_v3 "${2:-/proc/cpuinfo}"; then
      echo "$_wheel"
      return 0
    fi
    echo "the bundle's OpenBLAS dlib is built for x86-64-v3 (AVX2, FMA, BMI2) and this CPU" \
      "lacks some of it: keeping dlib-bin from the wheelhouse (slower face check-in:" \
      "frame to decision 93 ms instead of 34 ms on the reference machine, docs/face.md)" >&2
  elif [ "$_target" = "$_machine" ]; then
    echo "$_wheel"
  else
    echo "the bundle's OpenBLAS dlib is built for $_target, this machine is $_machine:" \
      "keeping dlib-bin" >&2
  fi
  return 0
}
