version 1.0
task t {
  command <<< echo "to stderr" >&2; echo "to stdout" >>>
  output { String err = read_string(stderr())  String out = read_string(stdout()) }
}
