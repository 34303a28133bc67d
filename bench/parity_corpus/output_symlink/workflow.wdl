version 1.0
task t {
  command <<< echo data > real.txt; ln -s real.txt link.txt >>>
  output { File via_link = "link.txt"  String text = read_string("link.txt") }
}
