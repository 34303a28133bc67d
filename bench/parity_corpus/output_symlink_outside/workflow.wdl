version 1.0
task t {
  command <<< ln -s /etc/hostname escape.txt >>>
  output { File f = "escape.txt" }
}
