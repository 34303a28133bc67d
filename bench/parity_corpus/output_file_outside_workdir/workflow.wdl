version 1.0
task t {
  command <<< echo hi >>>
  output { File f = "/etc/hostname" }
}
