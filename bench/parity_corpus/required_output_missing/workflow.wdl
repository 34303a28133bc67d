version 1.0
task t {
  command <<< echo nothing >>>
  output { File f = "never_written.txt" }
}
