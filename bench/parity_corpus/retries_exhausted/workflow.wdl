version 1.0
task always_fails {
  command <<< exit 1 >>>
  output { Int x = 1 }
  runtime { maxRetries: 1 }
}
