version 1.0
import "inner.wdl" as inner
workflow w {
  call inner.inner as i1
  call t
  output { String a = i1.s  String b = t.s }
}
task t {
  input { String word = "default" }
  command <<< echo ~{word} >>>
  output { String s = read_string(stdout()) }
}
