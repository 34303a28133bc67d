version 1.0
workflow s {
  call bad
  output { Int x = bad.x }
}
task bad {
  command <<< exit 4 >>>
  output { Int x = 1 }
}
