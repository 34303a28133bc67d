version 1.0
workflow w {
  call ok_then_fail
  output { String s = ok_then_fail.s }
}
task ok_then_fail {
  command <<<
    set -euo pipefail
    echo "working"
    echo "something went wrong" >&2
    false | cat
    echo "never"
  >>>
  output { String s = read_string(stdout()) }
}
