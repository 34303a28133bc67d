version 1.0
workflow w {
  input { Boolean go = true  Int x = 3 }
  if (go) {
    call double { input: x = x }
  }
  if (!go) {
    call double as never { input: x = x }
  }
  output {
    Int? doubled = double.y
    Int? skipped = never.y
    Int picked = select_first([double.y, never.y, -1])
  }
}
task double {
  input { Int x }
  command <<< echo $(( ~{x} * 2 )) >>>
  output { Int y = read_int(stdout()) }
}
