version 1.0
task t {
  command <<< echo "${PARITY_PASS:-unset}" >>>
  output { String s = read_string(stdout()) }
}
