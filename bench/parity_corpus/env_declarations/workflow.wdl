version 1.2
task t {
  input {
    env String GREETING = "hello"
    env Int COUNT = 2
    String plain = "not exported"
  }
  command <<< echo "$GREETING $COUNT ${plain:-absent}" >>>
  output { String s = read_string(stdout()) }
}
