version 1.0
task t {
  command <<< echo "FOO=${FOO:-unset} BAR=${BAR:-unset}" >>>
  output { String s = read_string(stdout()) }
}
