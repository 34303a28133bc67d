version 1.0
workflow w {
  input { Boolean flag = false  Array[Int] nums = [3, 1, 2]  String? absent  Float ratio = 0.25 }
  call t { input: flag = flag, nums = nums, absent = absent, ratio = ratio }
  output { String cmd = t.cmd }
}
task t {
  input { Boolean flag  Array[Int] nums  String? absent  Float ratio }
  command <<<
    echo "~{true='--yes' false='--no' flag} ~{sep=',' nums} [~{absent}] [~{default='d' absent}] ~{ratio}"
  >>>
  output { String cmd = read_string(stdout()) }
}
