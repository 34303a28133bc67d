version 1.0
task t {
  command <<< echo present > yes.txt >>>
  output { File? there = "yes.txt"  File? absent = "no.txt" }
}
